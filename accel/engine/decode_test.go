package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"github.com/llmesh/llmesh/accel"
	"github.com/llmesh/llmesh/accel/acceltest"
	"github.com/llmesh/llmesh/accel/transformer"
)

// TestMain doubles as the cpu plugin when a test's host launches the test
// binary (acceltest.Reexec).
func TestMain(m *testing.M) {
	acceltest.ServeIfReexec(map[string]func() accel.Backend{
		"cpu": func() accel.Backend { return New("cpu", transformer.PortableKernels()) },
	})
	os.Exit(m.Run())
}

const cachedJSON = `{"vocab_size":31,"n_ctx":24,"n_embd":16,"n_layer":3,"n_head":2,"positions":"rope","exit_layers":[1]}`

func loadCached(t *testing.T, b accel.Backend, id string) {
	t.Helper()
	if _, err := b.LoadModel(context.Background(), accel.LoadRequest{ModelID: id, ConfigJSON: []byte(cachedJSON), Seed: 3}); err != nil {
		t.Fatal(err)
	}
}

func closeRows(t *testing.T, what string, got, want [][]float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: row %d has %d logits, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j, v := range got[i] {
			w := want[i][j]
			if math.Abs(float64(v-w)) > tol*(1+math.Abs(float64(w))) || math.IsNaN(float64(v)) {
				t.Fatalf("%s: row %d logit %d = %v, want %v", what, i, j, v, w)
			}
		}
	}
}

// cachedRun prefills three sequences, then decodes them a token at a time
// (one joining late), and checks each step against recomputation without
// the cache on want.
func cachedRun(t *testing.T, b, want accel.Backend, id string, tol float64) {
	t.Helper()
	ctx := context.Background()
	hist := map[uint64][]int32{}
	for step := range 8 {
		req := accel.DecodeRequest{ModelID: id}
		add := func(cid uint64, toks ...int32) {
			req.CacheIDs = append(req.CacheIDs, cid)
			req.Sequences = append(req.Sequences, toks)
			hist[cid] = append(hist[cid], toks...)
		}
		switch step {
		case 0:
			add(7, 1, 2, 3, 4, 5)
			add(9, 30)
		case 3:
			add(7, int32(step))
			add(11, 5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
			add(9, int32(2*step))
		default:
			add(9, int32(2*step))
			add(7, int32(step))
			if _, ok := hist[11]; ok {
				add(11, int32(step+1))
			}
		}
		res, err := b.DecodeStep(ctx, req)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		var full [][]int32
		for i, cid := range req.CacheIDs {
			full = append(full, hist[cid])
			if res.CachedTokens[i] != len(hist[cid]) || res.ExitLayers[i] != 3 {
				t.Fatalf("step %d id %d: cached %d, exit layers %d; want %d and 3", step, cid, res.CachedTokens[i], res.ExitLayers[i], len(hist[cid]))
			}
		}
		ref, err := want.DecodeStep(ctx, accel.DecodeRequest{ModelID: id, Sequences: full})
		if err != nil {
			t.Fatal(err)
		}
		closeRows(t, fmt.Sprintf("step %d", step), res.Logits, ref.Logits, tol)
	}
}

func TestCachedDecodeMatchesRecompute(t *testing.T) {
	e := New("cpu", nil)
	loadCached(t, e, "m")
	cachedRun(t, e, e, "m", 1e-4)
	st, err := e.KVStats("m")
	if err != nil {
		t.Fatal(err)
	}
	if st.Sequences != 3 || st.Used == 0 {
		t.Fatalf("kv stats %+v, want 3 sequences", st)
	}
	// Early exit above 1 never fires; release with no step frees.
	res, err := e.DecodeStep(context.Background(), accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{7}, Sequences: [][]int32{{1}}, ExitThreshold: 1.5})
	if err != nil || res.ExitLayers[0] != 3 {
		t.Fatalf("threshold 1.5: %v, %+v", err, res.ExitLayers)
	}
	if _, err := e.DecodeStep(context.Background(), accel.DecodeRequest{ModelID: "m", Release: []uint64{7, 9, 11}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.KVStats("m"); st.Sequences != 0 || st.Used != 0 {
		t.Fatalf("after release: %+v", st)
	}
}

// TestEarlyExitWithoutCache: whole sequences with an exit threshold go
// through a scratch decoder; above 1 nothing exits (the plain logits), a
// tiny threshold exits every sequence at the first exit layer.
func TestEarlyExitWithoutCache(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	loadCached(t, e, "m")
	seqs := [][]int32{{1, 2, 3}, make([]int32, 30), {4}} // the second longer than n_ctx
	plain, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: seqs})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		threshold float32
		layers    int
	}{{1.5, 3}, {1e-9, 1}, {1.5, 3}} {
		res, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", Sequences: seqs, ExitThreshold: tc.threshold})
		if err != nil {
			t.Fatal(err)
		}
		if res.CachedTokens != nil {
			t.Fatalf("cached tokens %v without cache ids", res.CachedTokens)
		}
		for i, l := range res.ExitLayers {
			if l != tc.layers {
				t.Fatalf("threshold %v: sequence %d ran %d layers, want %d", tc.threshold, i, l, tc.layers)
			}
		}
		if tc.layers == 3 {
			closeRows(t, "threshold 1.5 vs plain", res.Logits, plain.Logits, 1e-4)
		}
	}
	if st, _ := e.KVStats("m"); st.Sequences != 0 {
		t.Fatalf("the scratch decoder touched the model's cache: %+v", st)
	}
}

func TestCachedDecodeErrors(t *testing.T) {
	ctx := context.Background()
	e := New("cpu", nil)
	loadCached(t, e, "m")
	if _, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{1}, Sequences: [][]int32{{1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]accel.DecodeRequest{
		"ids and sequences differ": {CacheIDs: []uint64{1, 2}, Sequences: [][]int32{{1}}},
		"duplicate id":             {CacheIDs: []uint64{1, 1}, Sequences: [][]int32{{1}, {2}}},
		"token outside vocab":      {CacheIDs: []uint64{2}, Sequences: [][]int32{{31}}},
		"empty append":             {CacheIDs: []uint64{1}, Sequences: [][]int32{{}}},
		"beyond n_ctx":             {CacheIDs: []uint64{1}, Sequences: [][]int32{make([]int32, 22)}},
		"NaN threshold":            {CacheIDs: []uint64{1}, Sequences: [][]int32{{1}}, ExitThreshold: float32(math.NaN())},
		"NaN threshold, no cache":  {Sequences: [][]int32{{1}}, ExitThreshold: float32(math.NaN())},
	} {
		t.Run(name, func(t *testing.T) {
			req.ModelID = "m"
			if _, err := e.DecodeStep(ctx, req); !errors.Is(err, accel.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
	res, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{1}, Sequences: [][]int32{{4}}})
	if err != nil || res.CachedTokens[0] != 4 {
		t.Fatalf("after bad requests: %v, cached %v", err, res.CachedTokens)
	}
}

func TestCachedDecodeBudget(t *testing.T) {
	ctx := context.Background()
	cfg, err := transformer.ParseConfig([]byte(cachedJSON))
	if err != nil {
		t.Fatal(err)
	}
	e := New("cpu", nil, WithKVCacheBytes(int64(2*transformer.KVBlockBytes(cfg))))
	loadCached(t, e, "m")
	long := make([]int32, 20) // two blocks
	if _, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{1}, Sequences: [][]int32{long}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{2}, Sequences: [][]int32{{1}}})
	if !errors.Is(err, accel.ErrInvalidArgument) || !errors.Is(err, transformer.ErrKVCacheFull) {
		t.Fatalf("err = %v, want a full cache", err)
	}
	if _, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{2}, Sequences: [][]int32{{1}}, Release: []uint64{1}}); err != nil {
		t.Fatalf("after releasing in the step: %v", err)
	}
	// Unload frees the cache with the model.
	if err := e.Unload(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.KVStats("m"); !errors.Is(err, accel.ErrUnknownModel) {
		t.Fatalf("kv stats after unload: %v", err)
	}
	loadCached(t, e, "m")
	res, err := e.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{2}, Sequences: [][]int32{{1, 2}}})
	if err != nil || res.CachedTokens[0] != 2 {
		t.Fatalf("id 2 after reload: %v, cached %v (want a fresh sequence)", err, res.CachedTokens)
	}
}

// TestCachedDecodeThroughPlugin runs the cached decode in a real plugin
// process (this test binary re-executed as the cpu plugin, over go-plugin
// gRPC) against recomputation in process.
func TestCachedDecodeThroughPlugin(t *testing.T) {
	h, err := accel.NewHost(accel.HostConfig{Command: acceltest.Reexec, StartTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := h.Launch(ctx, "cpu")
	if err != nil {
		t.Fatal(err)
	}
	e := New("cpu", nil)
	loadCached(t, p, "m")
	loadCached(t, e, "m")
	cachedRun(t, p, e, "m", 1e-4)
	_, err = p.DecodeStep(ctx, accel.DecodeRequest{ModelID: "m", CacheIDs: []uint64{7}, Sequences: [][]int32{{99}}})
	if !errors.Is(err, accel.ErrInvalidArgument) {
		t.Fatalf("bad token through the plugin: %v, want ErrInvalidArgument", err)
	}
}
