// sgemm.c: OpenBLAS SGEMM throughput, the partner of `llmesh bench
// kernels`. Built and run by that command (gcc -O2 sgemm.c -lopenblas);
// threads come from OPENBLAS_NUM_THREADS.
//
// usage: sgemm N MIN_SECONDS   → prints "gflops <per second> <per CPU-second>"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clockSec(clockid_t id) {
	struct timespec t;
	clock_gettime(id, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now(void) { return clockSec(CLOCK_MONOTONIC); }

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s N MIN_SECONDS\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[1]);
	double minSec = atof(argv[2]);
	if (n <= 0) {
		fprintf(stderr, "bad size %s\n", argv[1]);
		return 2;
	}
	size_t nn = (size_t)n * n;
	float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
	if (!a || !b || !c) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nn; i++) {
		a[i] = (float)(i % 7) - 3;
		b[i] = (float)(i % 5) - 2;
		c[i] = 0;
	}
	// One warm-up call, then whole calls until MIN_SECONDS have passed.
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
	long reps = 0;
	double t0 = now(), c0 = clockSec(CLOCK_PROCESS_CPUTIME_ID), el;
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
		reps++;
		el = now() - t0;
	} while (el < minSec);
	double ops = 2.0 * n * n * (double)n * reps;
	printf("gflops %.3f %.3f\n", ops / el / 1e9, ops / (clockSec(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9);
	return 0;
}
