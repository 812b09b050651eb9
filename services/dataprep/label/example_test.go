package label_test

import (
	"fmt"

	"github.com/llmesh/llmesh/services/dataprep/label"
)

func Example() {
	cfg := label.DefaultConfig()
	docs := []label.Doc{
		{Title: "借款合同", Text: "借款合同\n出借人（甲方）：张三\n借款人（乙方）：李四\n第一条 借款金额\n签订日期：2023年10月9日"},
		{Title: "民事判决书", Text: "（2022）粤0304民初28116号\n原告：王五\n被告：赵六\n本院认为，……判决如下："},
		{Title: "城镇燃气管理条例", Text: "第一条 为了加强燃气管理，制定本条例。"},
	}
	m := label.Apply(cfg, docs)
	for i, l := range label.MajorityVote(m) {
		fmt.Println(docs[i].Title, cfg.Labels[l])
	}
	// Output:
	// 借款合同 contract
	// 民事判决书 judgment
	// 城镇燃气管理条例 regulation
}
