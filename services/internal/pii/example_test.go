package pii_test

import (
	"fmt"

	"github.com/llmesh/llmesh/services/internal/pii"
)

func ExampleScanner_Scrub() {
	s, err := pii.New(pii.Config{})
	if err != nil {
		panic(err)
	}
	text := "原告张三，身份证号11010519491231002X，电话138-1234-5678，邮箱zhangsan@example.com。"
	out, spans := s.Scrub(text)
	fmt.Println(out)
	for _, m := range spans {
		fmt.Println(m.Type, m.Start, m.End)
	}
	// Output:
	// 原告张三，身份证号[CN_ID]，电话[CN_MOBILE]，邮箱[EMAIL]。
	// cn_id 27 45
	// cn_mobile 54 67
	// email 76 96
}
