package transformer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestGradientsReady checks the backward hook on every architecture
// option: the ranges it reports cover the gradient vector exactly once, in
// backward order (final norm, layers last to first, embeddings), each
// layer's range holds exactly that layer's tensors, and nothing writes a
// range after it was reported (its values then equal the final ones). The
// hook must not change the gradients.
func TestGradientsReady(t *testing.T) {
	cfgs := map[string]Config{
		"learned layernorm": tinyConfig("learned", "layernorm"),
		"rope rmsnorm":      tinyConfig("rope", "rmsnorm"),
		"swiglu":            {VocabSize: 13, NCtx: 5, NEmbd: 8, NLayer: 3, NHead: 2, MLP: "swiglu"},
		"exits":             {VocabSize: 11, NCtx: 6, NEmbd: 8, NLayer: 4, NHead: 2, ExitLayers: []int{1, 3}},
	}
	for name, cfg := range cfgs {
		for _, distill := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/distill=%v", name, distill), func(t *testing.T) {
				const B, T = 3, 5
				r := rand.New(rand.NewPCG(7, 3))
				in, tg := randTokens(r, B*T, cfg.VocabSize), randTokens(r, B*T, cfg.VocabSize)
				var st *SoftTargets
				if distill {
					st = randTeacher(r, B*T, cfg.VocabSize, 3, 1, 2, 0.5)
				}
				pass := func(m *Model) {
					t.Helper()
					var err error
					if st != nil {
						_, err = m.DistillForwardBackward(in, tg, B, T, st)
					} else {
						_, err = m.ForwardBackward(in, tg, B, T)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				// Something already in Grads (the pass adds to it) must not
				// confuse the hook.
				preload := func(m *Model) *Model {
					for i := range m.Grads() {
						m.Grads()[i] = 0.25
					}
					return m
				}
				plain := preload(New(cfg, nil, 5))
				pass(plain)

				m := preload(New(cfg, nil, 5))
				type span struct {
					lo, hi int
					vals   []float32
				}
				var got []span
				m.SetGradientsReady(func(lo, hi int) {
					got = append(got, span{lo, hi, slices.Clone(m.Grads()[lo:hi])})
				})
				pass(m)
				m.SetGradientsReady(nil)

				n := m.NumParams()
				seen := make([]int, n)
				for _, s := range got {
					if s.lo < 0 || s.hi > n || s.lo >= s.hi {
						t.Fatalf("range [%d, %d) of %d gradients", s.lo, s.hi, n)
					}
					for i := s.lo; i < s.hi; i++ {
						seen[i]++
					}
					for i, v := range s.vals {
						if final := m.Grads()[s.lo+i]; v != final {
							t.Fatalf("gradient %d was %v when [%d, %d) was reported, %v at the end", s.lo+i, v, s.lo, s.hi, final)
						}
					}
				}
				for i, c := range seen {
					if c != 1 {
						t.Fatalf("gradient %d reported %d times, want once", i, c)
					}
				}
				for i, v := range m.Grads() {
					if want := plain.Grads()[i]; v != want {
						t.Fatalf("gradient %d = %v with the hook, %v without", i, v, want)
					}
				}
				// Order and contents: ranges named by the tensors in them.
				var names []string
				for _, s := range got {
					var in []string
					for _, p := range m.Params() {
						if p.Offset >= s.lo && p.Offset+p.Size() <= s.hi {
							in = append(in, p.Name)
						} else if p.Offset < s.hi && p.Offset+p.Size() > s.lo {
							t.Fatalf("range [%d, %d) splits tensor %s", s.lo, s.hi, p.Name)
						}
					}
					names = append(names, groupOf(in))
				}
				want := []string{"ln_f"}
				for l := cfg.NLayer - 1; l >= 0; l-- {
					if slices.Contains(cfg.ExitLayers, l+1) {
						want = append(want, fmt.Sprintf("exit.%d", l+1))
					}
					want = append(want, fmt.Sprintf("h.%d", l))
				}
				want = append(want, "embeddings")
				if !slices.Equal(names, want) {
					t.Errorf("ranges in order %v, want %v", names, want)
				}
			})
		}
	}
}

// groupOf names the group all of tensors belong to ("h.3", "ln_f",
// "exit.2", "embeddings"), or lists them when they are mixed.
func groupOf(tensors []string) string {
	group := func(n string) string {
		switch {
		case n == "wte" || n == "wpe":
			return "embeddings"
		case strings.HasPrefix(n, "h."), strings.HasPrefix(n, "exit."):
			parts := strings.SplitN(n, ".", 3)
			return parts[0] + "." + parts[1]
		}
		return strings.SplitN(n, ".", 2)[0]
	}
	g := ""
	for i, n := range tensors {
		if i == 0 {
			g = group(n)
		} else if group(n) != g {
			return strings.Join(tensors, ",")
		}
	}
	return g
}
