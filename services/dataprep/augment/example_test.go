package augment_test

import (
	"fmt"

	"github.com/llmesh/llmesh/services/dataprep/augment"
)

func ExampleAugmenter_Apply() {
	a, err := augment.New(augment.Config{
		SynonymRate: 1,
		Dictionary:  map[string][]string{"甲方": {"出卖人"}, "支付": {"给付"}, "shall": {"must"}},
		Seed:        7,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(a.Apply("doc-1", "甲方应当支付货款。The Buyer shall pay."))
	// Output:
	// 出卖人应当给付货款。The Buyer must pay.
}
