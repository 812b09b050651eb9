// int8_onednn.c: oneDNN INT8 GEMM throughput (dnnl_gemm_s8s8s32, B
// transposed as weights are stored), a partner of `llmesh bench kernels`.
// Built and run by that command (gcc -O2 int8_onednn.c -ldnnl); threads
// come from OMP_NUM_THREADS.
//
// usage: int8_onednn N MIN_SECONDS   → prints "gops <per second> <per CPU-second>"
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clockSec(clockid_t id) {
	struct timespec t;
	clock_gettime(id, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now(void) { return clockSec(CLOCK_MONOTONIC); }

static int run(int n, const int8_t *a, const int8_t *b, int32_t *c) {
	int32_t co = 0;
	return dnnl_gemm_s8s8s32('N', 'T', 'F', n, n, n, 1.0f, a, n, 0, b, n, 0, 0.0f, c, n, &co) != dnnl_success;
}

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
	int8_t *a = malloc(nn), *b = malloc(nn);
	int32_t *c = malloc(nn * sizeof(int32_t));
	if (!a || !b || !c) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nn; i++) {
		a[i] = (int8_t)(i % 13) - 6;
		b[i] = (int8_t)(i % 11) - 5;
	}
	if (run(n, a, b, c)) {
		fprintf(stderr, "dnnl_gemm_s8s8s32 failed\n");
		return 1;
	}
	long reps = 0;
	double t0 = now(), c0 = clockSec(CLOCK_PROCESS_CPUTIME_ID), el;
	do {
		run(n, a, b, c);
		reps++;
		el = now() - t0;
	} while (el < minSec);
	double ops = 2.0 * n * n * (double)n * reps;
	printf("gops %.3f %.3f\n", ops / el / 1e9, ops / (clockSec(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9);
	return 0;
}
