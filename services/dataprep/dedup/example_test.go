package dedup_test

import (
	"fmt"

	"github.com/llmesh/llmesh/services/dataprep/dedup"
)

func Example() {
	cfg := dedup.DefaultConfig()
	h, _ := dedup.NewHasher(cfg)
	ix, _ := dedup.NewIndex(cfg)
	docs := []string{
		"第一条 为了规范公司的组织和行为，保护公司、股东、职工和债权人的合法权益，制定本法。",
		"第一条 为了规范公司的组织和行为，保护公司、股东、职工和债权人的合法权益，制定本法律。",
		"第一条 为了保护劳动者的合法权益，调整劳动关系，建立和维护适应社会主义市场经济的劳动制度。",
	}
	titles := []string{"公司法(2013-12-28)", "公司法（2023年12月29日修订）", "劳动法"}
	var sig []uint32
	for id, d := range docs {
		sig = h.Signature(d, sig)
		if err := ix.Add(id, sig); err != nil {
			panic(err)
		}
	}
	clusters := ix.Clusters(func(a, b int) bool { return dedup.Jaccard(docs[a], docs[b], cfg.Shingle) >= cfg.Threshold })
	fmt.Println("clusters:", clusters)
	keep := dedup.Keep(clusters, dedup.KeepNewest, func(id int) (string, int) { return dedup.DateOf(titles[id]), id })
	fmt.Println("keep 0:", keep[0], "keep 1:", keep[1])
	fmt.Printf("exact Jaccard 0~1: %.2f\n", dedup.Jaccard(docs[0], docs[1], 5))
	// Output:
	// clusters: [[0 1]]
	// keep 0: false keep 1: true
	// exact Jaccard 0~1: 0.93
}
