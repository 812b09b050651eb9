package dedup_test

import (
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/dedup"
	"github.com/llmesh/llmesh/services/dataprep/synth"
)

// TestNearDupAcceptance is the acceptance measurement, on the
// synthetic corpus (2000 base documents, 300 exact and 600 near duplicates
// at target Jaccard 0.50, 0.55, ..., 0.95) with the default config: 5-rune
// shingles, 128 permutations as 16 bands × 8 rows, confirmation at 0.8.
//
// Definitions (pairs are unordered document pairs):
//   - relevant: the planted pairs whose exact Jaccard is ≥ 0.8 (every exact
//     duplicate and the near duplicates at or above 0.8);
//   - predicted: every pair of documents that end up in one cluster (the
//     transitive closure, since that is what dedup drops by);
//   - recall: relevant pairs that are predicted / relevant pairs;
//   - precision: predicted pairs that are correct / predicted pairs, where
//     a pair is correct when it is a planted pair (at any similarity: it is
//     a true duplicate relation, only a looser one) or its exact Jaccard is
//     ≥ 0.8. A planted near pair at 0.75 that joins a cluster is therefore
//     not an error; two unrelated documents joined are.
//
// Two confirmations are measured: exact Jaccard of the candidate texts
// (what a caller holding the texts can do; asserted), and estimated Jaccard
// from the signatures (what a streaming pipeline does; reported, and
// held to the same bar).
func TestNearDupAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("acceptance corpus takes a few seconds")
	}
	const threshold = 0.8
	c := synth.Generate(synth.Config{Seed: 1, Base: 2000, ExactDups: 300, NearDups: 600})
	cfg := dedup.DefaultConfig()
	h := mustHasher(t, cfg)
	ix, err := dedup.NewIndex(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]uint32, 0, cfg.Perms)
	for i, d := range c.Docs {
		sig = h.Signature(d.Text, sig)
		if err := ix.Add(i, sig); err != nil {
			t.Fatal(err)
		}
	}
	planted := map[[2]int]float64{}
	relevant := 0
	for _, p := range c.DupPairs {
		planted[[2]int{p.A, p.B}] = p.Jaccard
		if p.Jaccard >= threshold {
			relevant++
		}
	}
	text := func(id int) string { return c.Docs[id].Text }
	confirms := map[string]func(a, b int) bool{
		"exact":     func(a, b int) bool { return dedup.Jaccard(text(a), text(b), cfg.Shingle) >= threshold },
		"estimated": ix.ConfirmEstimated(),
	}
	for _, name := range []string{"exact", "estimated"} {
		t.Run(name, func(t *testing.T) {
			clusters := ix.Clusters(confirms[name])
			predicted := map[[2]int]bool{}
			for _, cl := range clusters {
				for i, a := range cl {
					for _, b := range cl[i+1:] {
						predicted[[2]int{a, b}] = true
					}
				}
			}
			hit := 0
			var missed []float64
			for _, p := range c.DupPairs {
				if p.Jaccard < threshold {
					continue
				}
				if predicted[[2]int{p.A, p.B}] {
					hit++
				} else {
					missed = append(missed, p.Jaccard)
				}
			}
			correct, loose := 0, 0
			for pair := range predicted {
				if j, ok := planted[pair]; ok {
					correct++
					if j < threshold {
						loose++
					}
				} else if dedup.Jaccard(text(pair[0]), text(pair[1]), cfg.Shingle) >= threshold {
					correct++
				}
			}
			recall := float64(hit) / float64(relevant)
			precision := float64(correct) / float64(max(len(predicted), 1))
			t.Logf("confirm %s: recall %.4f (%d/%d planted pairs with Jaccard ≥ %.1f; missed at %.3f), precision %.4f (%d/%d predicted pairs; %d planted pairs below %.1f among them), %d clusters",
				name, recall, hit, relevant, threshold, missed, precision, correct, len(predicted), loose, threshold, len(clusters))
			if recall < 0.95 || precision < 0.95 {
				t.Errorf("recall %.4f, precision %.4f; want both ≥ 0.95", recall, precision)
			}
		})
	}
}
