package dedup_test

import (
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/synth"
)

func TestZZSeeds(t *testing.T) {
	c := synth.Generate(synth.Config{Seed: 1, Base: 2000, ExactDups: 300, NearDups: 600})
	var sumR, minR, sumP, minP, sumRE, minRE float64 = 0, 1, 0, 1, 0, 1
	const seeds = 20
	for seed := range uint64(seeds) {
		cfg := dedup.DefaultConfig()
		cfg.Seed = seed
		h, _ := dedup.NewHasher(cfg)
		ix, _ := dedup.NewIndex(cfg)
		sig := make([]uint32, 0, 128)
		for i, d := range c.Docs {
			sig = h.Signature(d.Text, sig)
			ix.Add(i, sig)
		}
		planted := map[[2]int]float64{}
		relevant := 0
		for _, p := range c.DupPairs {
			planted[[2]int{p.A, p.B}] = p.Jaccard
			if p.Jaccard >= 0.8 {
				relevant++
			}
		}
		text := func(id int) string { return c.Docs[id].Text }
		run := func(confirm func(a, b int) bool) (float64, float64) {
			pred := map[[2]int]bool{}
			for _, cl := range ix.Clusters(confirm) {
				for i, a := range cl {
					for _, b := range cl[i+1:] {
						pred[[2]int{a, b}] = true
					}
				}
			}
			hit := 0
			for _, p := range c.DupPairs {
				if p.Jaccard >= 0.8 && pred[[2]int{p.A, p.B}] {
					hit++
				}
			}
			correct := 0
			for pair := range pred {
				if _, ok := planted[pair]; ok || dedup.Jaccard(text(pair[0]), text(pair[1]), 5) >= 0.8 {
					correct++
				}
			}
			return float64(hit) / float64(relevant), float64(correct) / float64(max(len(pred), 1))
		}
		r, p := run(ix.ConfirmEstimated())
		re, _ := run(func(a, b int) bool { return dedup.Jaccard(text(a), text(b), 5) >= 0.8 })
		sumR += r; minR = min(minR, r); sumP += p; minP = min(minP, p); sumRE += re; minRE = min(minRE, re)
	}
	t.Logf("estimated: recall mean %.4f min %.4f, precision mean %.4f min %.4f; exact recall mean %.4f min %.4f", sumR/seeds, minR, sumP/seeds, minP, sumRE/seeds, minRE)
}
