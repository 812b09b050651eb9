package transformer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel/simd"
)

// BenchmarkDecodeInt8 is BenchmarkDecode's greedy KV-cached generation on
// the reference config with the SIMD kernels, for the INT8 model
// (dynamic activations) and, as its partner in the same run, the fp32
// model it was quantized from: each iteration generates once with each,
// interleaved, so that both see the same machine load. It reports both
// throughputs, int8/fp32 (higher is better) and the checkpoint size
// ratios fp32/int8, without and with QuantOptions.Positions.
func BenchmarkDecodeInt8(b *testing.B) {
	k := simd.Must()
	fm := New(benchConfig, k, 1)
	var buf bytes.Buffer
	if err := WriteCheckpoint(&buf, fm, 0, nil); err != nil {
		b.Fatal(err)
	}
	q, rep, err := Quantize(buf.Bytes(), Config{}, QuantOptions{})
	if err != nil {
		b.Fatal(err)
	}
	_, repPos, err := Quantize(buf.Bytes(), Config{}, QuantOptions{Positions: true})
	if err != nil {
		b.Fatal(err)
	}
	ck, err := ReadCheckpoint(q, Config{}, k)
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			blocks := batch * (benchConfig.NCtx / KVBlockTokens)
			fd, qd := NewDecoder(fm, blocks), NewDecoder(ck.Model, blocks)
			var ft, qt time.Duration
			r := rand.New(rand.NewPCG(1, 2))
			for b.Loop() {
				ft += greedyRun(b, fd, r, batch)
				qt += greedyRun(b, qd, r, batch)
			}
			tokens := float64(b.N * batch * benchGen)
			b.ReportMetric(tokens/qt.Seconds(), "int8-tokens/s")
			b.ReportMetric(tokens/ft.Seconds(), "fp32-tokens/s")
			b.ReportMetric(ft.Seconds()/qt.Seconds(), "int8/fp32")
			b.ReportMetric(float64(rep.BytesBefore)/float64(rep.BytesAfter), "fp32/int8-bytes")
			b.ReportMetric(float64(repPos.BytesBefore)/float64(repPos.BytesAfter), "fp32/int8-bytes-positions")
		})
	}
}

// greedyRun generates benchGen tokens after a fresh random prompt of
// benchPrompt tokens for batch sequences, as BenchmarkDecode does, and
// returns the time it took.
func greedyRun(b *testing.B, d *Decoder, r *rand.Rand, batch int) time.Duration {
	seqs := make([]DecodeSeq, batch)
	ids := make([]uint64, batch)
	next := make([][1]int32, batch)
	for i := range seqs {
		ids[i] = uint64(i)
		seqs[i] = DecodeSeq{ID: uint64(i), Tokens: randTokens(r, benchPrompt, benchConfig.VocabSize)}
	}
	d.Release(ids...)
	t0 := time.Now()
	for range benchGen {
		res, err := d.Step(seqs, nil, 0)
		if err != nil {
			b.Fatal(err)
		}
		for i, row := range res.Logits {
			best := 0
			for v, x := range row {
				if x > row[best] {
					best = v
				}
			}
			next[i][0] = int32(best)
			seqs[i].Tokens = next[i][:]
		}
	}
	return time.Since(t0)
}
