package democorpus_test

import (
	"fmt"
	"strings"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
)

func ExampleGenerate() {
	docs := democorpus.Generate(1, 3)
	for _, d := range docs {
		fmt.Println(d.ID, d.Lang, d.Kind, d.Title, strings.SplitN(d.Text, "\n", 2)[0])
	}
	// Output:
	// demo-1-000000 zh sale 买卖合同 买卖合同
	// demo-1-000001 zh lease 房屋租赁合同 房屋租赁合同
	// demo-1-000002 zh employment 劳动合同 劳动合同
}
