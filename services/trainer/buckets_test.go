package trainer

import (
	"encoding/json"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/llmesh/llmesh/services/internal/jobspec"
)

// Buckets cover the gradient vector exactly, from the end down, each of
// the bucket size but the one holding gradient 0.
func TestBuckets(t *testing.T) {
	tests := map[string]struct {
		n, bucketBytes int
		want           int
	}{
		"default":         {n: 4_200_000, want: 17},
		"exact":           {n: 3 * 1024, bucketBytes: 4096, want: 3},
		"ragged":          {n: 3*1024 + 1, bucketBytes: 4096, want: 4},
		"below the floor": {n: 5000, bucketBytes: 8, want: 5}, // at least 1024 gradients a bucket
		"one":             {n: 10, bucketBytes: 1 << 20, want: 1},
		"empty":           {n: 0, want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := &gen{p: planInfo{BucketBytes: tc.bucketBytes}}
			b := g.buckets(tc.n)
			if b.count() != tc.want || b.seqs() != uint64(tc.want)+3 {
				t.Fatalf("%d gradients in buckets of %d bytes: %d buckets (%d seqs), want %d", tc.n, tc.bucketBytes, b.count(), b.seqs(), tc.want)
			}
			at := tc.n
			for k := range b.count() {
				lo, hi := b.bounds(k)
				if hi != at || lo > hi || (k < b.count()-1 && hi-lo != b.size) {
					t.Fatalf("bucket %d is [%d, %d) after %d (size %d)", k, lo, hi, at, b.size)
				}
				at = lo
			}
			if at != 0 {
				t.Errorf("buckets end at %d, want 0", at)
			}
		})
	}
}

// Gradients all-reduced in many small buckets while the backward pass
// runs give the same training as one bucket after it — bit for bit on two
// shards, where a sum of two is the same in any order — and follow one
// shard; with gradient accumulation (only the last micro-batch streams)
// and on three shards too.
func TestDataParallelBuckets(t *testing.T) {
	e := newEnvWith(t, func(c *Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.ChunkBytes = 4 << 10
	})
	// Two layers: several layer ranges and buckets in a step (the model
	// has 7,888 parameters: 8 buckets of 1,024).
	base := e.dpSpec(t, 1, func(s map[string]any) {
		s["config"] = json.RawMessage(`{"vocab_size":64,"n_ctx":16,"n_embd":16,"n_layer":2,"n_head":2}`)
		s["steps"], s["eval_every"], s["checkpoint_every"] = 10, 5, 5
	})
	run := func(name string, shards int, bucketMB float64, mod func(map[string]any)) (map[int64]float64, []Result) {
		s := maps.Clone(base)
		s["shards"], s["bucket_mb"] = shards, bucketMB
		if mod != nil {
			mod(s)
		}
		specs := make([]map[string]any, shards)
		for i := range specs {
			specs[i] = s
		}
		res, errs := e.runShards(t, name, specs...)
		for _, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		c := e.curveOf(t, name, 10)
		if len(c) != 10 {
			t.Fatalf("%s: loss logged at %d steps, want 10", name, len(c))
		}
		return c, res
	}
	accum := func(s map[string]any) { s["batch"], s["grad_accum"] = 3, 2 }
	one, _ := run("one", 1, 1024, nil)
	whole, _ := run("whole", 2, 1024, nil)
	small, res := run("small", 2, 0.001, nil)
	smallAccum, _ := run("small-accum", 2, 0.001, accum)
	wholeAccum, _ := run("whole-accum", 2, 1024, accum)
	three, _ := run("three", 3, 0.001, nil)
	for step, l := range whole {
		if small[step] != l {
			t.Errorf("step %d: loss %v in small buckets, %v in one bucket", step, small[step], l)
		}
		if smallAccum[step] != wholeAccum[step] {
			t.Errorf("step %d: with grad_accum, loss %v in small buckets, %v in one bucket", step, smallAccum[step], wholeAccum[step])
		}
		for name, c := range map[string]map[int64]float64{"two shards": small, "three shards": three, "grad_accum": smallAccum} {
			if d := math.Abs(c[step]-one[step]) / one[step]; d > 0.01 {
				t.Errorf("step %d: loss %.5f on %s, %.5f on one shard", step, c[step], name, one[step])
			}
		}
	}
	for _, r := range res {
		if !(r.AllReduceSeconds > 0 && r.AllReduceWaitSeconds >= 0 && r.AllReduceWaitSeconds <= r.AllReduceSeconds) {
			t.Errorf("rank %d: %.4fs in allreduce, %.4fs of it waited for: want 0 <= waited <= total > 0", r.Rank, r.AllReduceSeconds, r.AllReduceWaitSeconds)
		}
	}
}

func TestSpecBucketMB(t *testing.T) {
	for _, v := range []string{"-1", "1025", "2e9"} {
		spec := `{"model":"m","config":` + tinyConfig + `,"train_ref":"` + trainRef + `","val_ref":"` + valRef + `","steps":1,"batch":1,"shards":2,"bucket_mb":` + v + `}`
		var s Spec
		if err := jobspec.Decode("train", []byte(spec), &s); err == nil || !strings.Contains(err.Error(), "bucket_mb") {
			t.Errorf("bucket_mb %s: Decode = %v, want an error naming bucket_mb", v, err)
		}
	}
	if bucketBytes(0) != DefaultBucketMB<<20 || bucketBytes(0.5) != 1<<19 {
		t.Errorf("bucketBytes(0) = %d, bucketBytes(0.5) = %d", bucketBytes(0), bucketBytes(0.5))
	}
}
