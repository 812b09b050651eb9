package transformer

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/llmesh/llmesh/accel/simd"
)

// benchConfig is the reference decoding config of issue 7 (4.3M
// parameters); bench/torch/decode.py builds the same model in PyTorch.
var benchConfig = Config{VocabSize: 4096, NCtx: 256, NEmbd: 256, NLayer: 4, NHead: 4}

// Greedy generation as bench/torch/decode.py measures it: a prompt of
// benchPrompt tokens per sequence, then benchGen tokens, each step feeding
// every sequence's argmax back.
const benchPrompt, benchGen = 32, 224

// BenchmarkDecode reports greedy KV-cached generation throughput
// (generated tokens per second over all sequences, prefill included) on
// the reference config, batch 1 and 8, with the portable and the SIMD
// kernels. tokens/cpu-s divides by the process's CPU time instead of the
// wall clock: on a machine shared with other work it says what the
// decoder costs, where tokens/s also says how much CPU it was given.
func BenchmarkDecode(b *testing.B) {
	for _, kn := range []string{"portable", "simd"} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("kernels=%s/batch=%d", kn, batch), func(b *testing.B) {
				benchGreedy(b, benchKernels[kn](), batch, benchPrompt, benchGen)
			})
		}
	}
}

// benchKernels are the kernel sets the decoding benchmarks compare.
var benchKernels = map[string]func() Kernels{
	"portable": PortableKernels,
	"simd":     func() Kernels { return simd.Must() },
}

// benchGreedy times greedy KV-cached generation on the reference config:
// batch sequences of a prompt-token random prompt, then gen tokens each,
// every step feeding each sequence's argmax back.
func benchGreedy(b *testing.B, k Kernels, batch, prompt, gen int) {
	m := New(benchConfig, k, 1)
	d := NewDecoder(m, batch*(benchConfig.NCtx/KVBlockTokens))
	r := rand.New(rand.NewPCG(1, 2))
	seqs := make([]DecodeSeq, batch)
	ids := make([]uint64, batch)
	next := make([][1]int32, batch)
	cpu0 := cpuTime()
	for b.Loop() {
		for i := range seqs {
			ids[i] = uint64(i)
			seqs[i] = DecodeSeq{ID: uint64(i), Tokens: randTokens(r, prompt, benchConfig.VocabSize)}
		}
		d.Release(ids...)
		for range gen {
			res, err := d.Step(seqs, nil, 0)
			if err != nil {
				b.Fatal(err)
			}
			for i, row := range res.Logits {
				next[i][0] = int32(argmax(row))
				seqs[i].Tokens = next[i][:]
			}
		}
	}
	tokens := float64(b.N * batch * gen)
	b.ReportMetric(tokens/b.Elapsed().Seconds(), "tokens/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(tokens/cpu.Seconds(), "tokens/cpu-s")
	}
}
