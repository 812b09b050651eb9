package quality

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// good texts that must pass: a Markdown law and an English licence excerpt.
const goodZH = `# 中华人民共和国示例保护法

## 第一章 总则

第一条 为了保护和改善生活环境与生态环境，防治污染和其他公害，保障人体健康，促进社会主义现代化建设的发展，制定本法。

第二条 本法所称环境，是指影响人类生存和发展的各种天然的和经过人工改造的自然因素的总体，包括大气、水、海洋、土地、矿藏、森林、草原、野生生物、自然遗迹、人文遗迹、自然保护区、风景名胜区、城市和乡村等。

第三条 本法适用于中华人民共和国领域和中华人民共和国管辖的其他海域。

## 第二章 监督管理

第四条 国家制定的环境保护规划必须纳入国民经济和社会发展计划，国家采取有利于环境保护的经济、技术政策和措施，使环境保护工作同经济建设和社会发展相协调。`

const goodEN = `Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.`

func TestCheckJunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	symbols := []rune("#$%&*@!~^=+<>|/\\{}[]")
	var soup strings.Builder
	for range 400 {
		soup.WriteRune(symbols[rng.IntN(len(symbols))])
		if rng.IntN(8) == 0 {
			soup.WriteByte(' ')
		}
	}
	var distinct strings.Builder
	for i := range 40 {
		fmt.Fprintf(&distinct, "第%d条 本条规定的内容各不相同，编号为%d。\n", i, i*7)
	}
	tests := map[string]struct {
		text string
		want string
	}{
		"too short":          {"第一条 本法自公布之日起施行。", RuleMinChars},
		"symbol soup":        {soup.String(), RuleCJKOrLatin},
		"digit table":        {strings.Repeat("| 2021 | 3.5 | 1,204 | 88 |\n", 30), RuleCJKOrLatin},
		"hashtags":           {strings.Repeat("买手机 #便宜 #特价 #包邮 #正品 好货 ", 20), RuleSymbols},
		"ellipsis teasers":   {strings.Repeat("震惊！这个方法让所有在场的人都完全没有想到，结果竟然是这样…\n今天我们来聊一聊最近发生在身边的一件小事。\n", 10), RuleEllipsisLines},
		"bullets only":       {strings.Repeat("• 首页\n• 产品中心\n• 新闻动态\n• 联系我们\n• 关于本公司\n", 5), RuleBulletLines},
		"boilerplate page":   {"首页 | 新闻 | 联系我们\n点击这里查看更多内容\nCopyright 2024 某某公司 版权所有\nAll Rights Reserved.\n本站使用 cookie 以改善体验\n请启用 JavaScript 后访问本页面\n上一篇：关于某事的通知\n下一篇：关于另一事的通知", RuleBoilerplate},
		"line repeated 50x":  {strings.Repeat("欢迎光临本店，全场五折优惠\n", 50), RuleDupLines},
		"repeated paragraph": {"引言部分的文字，介绍了背景。\n" + strings.Repeat("这是一个很长的段落，它在页面上重复出现了很多次，内容完全一样，没有任何变化，只是为了凑字数而已。\n", 3) + "另外一行。\n还有一行。\n最后一行。\n再来一行。\n", RuleDupLineChars},
		"keyword stuffing":   {strings.Repeat("cheap phones cheap phones buy cheap phones now ", 30), RuleTop2Gram},
		"chinese stuffing":   {"正品手机" + strings.Repeat("手机批发手机", 40) + "欢迎选购", RuleTop2Gram},
		"repeated sentence":  {strings.Repeat("The quick brown fox jumps over the lazy dog and runs away into the forest. ", 12), RuleTop3Gram},
		"good chinese law":   {goodZH, ""},
		"good english":       {goodEN, ""},
		"templated lines":    {distinct.String(), RuleTop4Gram},
	}
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			rule, ok := f.Check(tt.text)
			if ok != (tt.want == "") || rule != tt.want {
				t.Errorf("Check = (%q, %v), want %q\nstats: %+v", rule, ok, tt.want, f.Stats(tt.text))
			}
		})
	}
}

func TestStats(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		text string
		want Stats
	}{
		"heading is not a symbol": {"## 标题\n正文 #话题", Stats{Chars: 7, Lines: 2, Words: 6, CJKOrLatinRatio: 6.0 / 7, SymbolRatio: 1.0 / 6}},
		"dup lines":               {"ab\ncd\nab\nab", Stats{Chars: 8, Lines: 4, Words: 4, CJKOrLatinRatio: 1, DupLineFrac: 0.5, DupLineCharFrac: 0.5, TopNGramCharFrac: [3]float64{0, 0, 0}}},
		"ellipsis and bullet":     {"• a...\n- b\n-c…", Stats{Chars: 10, Lines: 3, Words: 3, CJKOrLatinRatio: 0.3, SymbolRatio: 2.0 / 3, BulletLineFrac: 2.0 / 3, EllipsisLineFrac: 2.0 / 3}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := f.Stats(tt.text)
			got.TopNGramCharFrac, got.DupNGramCharFrac = [3]float64{}, [6]float64{}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Stats(%q) mismatch (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

// TestNGrams checks the n-gram measures against a direct count.
func TestNGrams(t *testing.T) {
	f, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("的一是了我不人在他有这个上们来到时大地为")
	for trial := range 50 {
		n := 20 + rng.IntN(300)
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = alphabet[rng.IntN(2+trial%(len(alphabet)-2))]
		}
		text := string(rs)
		got := f.Stats(text)
		for k := 2; k <= 4; k++ {
			counts := map[string]int{}
			best := 0
			for i := 0; i+k <= n; i++ {
				counts[string(rs[i:i+k])]++
				best = max(best, counts[string(rs[i:i+k])])
			}
			want := min(1, float64(best*k)/float64(n))
			if diff := got.TopNGramCharFrac[k-2] - want; diff > 1e-9 || diff < -1e-9 {
				t.Fatalf("trial %d top %d-gram = %v, want %v", trial, k, got.TopNGramCharFrac[k-2], want)
			}
		}
		for k := 5; k <= 10; k++ {
			counts := map[string]int{}
			for i := 0; i+k <= n; i++ {
				counts[string(rs[i:i+k])]++
			}
			covered := make([]bool, n)
			for i := 0; i+k <= n; i++ {
				if counts[string(rs[i:i+k])] > 1 {
					for j := i; j < i+k; j++ {
						covered[j] = true
					}
				}
			}
			c := 0
			for _, b := range covered {
				if b {
					c++
				}
			}
			want := float64(c) / float64(n)
			if diff := got.DupNGramCharFrac[k-5] - want; diff > 1e-9 || diff < -1e-9 {
				t.Fatalf("trial %d dup %d-gram = %v, want %v", trial, k, got.DupNGramCharFrac[k-5], want)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	if _, err := New(Config{}); err != nil {
		t.Fatalf("zero Config (all rules off) invalid: %v", err)
	}
	bad := map[string]func(*Config){
		"negative min":    func(c *Config) { c.MinChars = -1 },
		"max below min":   func(c *Config) { c.MaxChars = 10 },
		"fraction above1": func(c *Config) { c.MaxDupLineFrac = 1.5 },
		"ngram negative":  func(c *Config) { c.MaxDupNGramCharFrac[3] = -0.1 },
		"empty pattern":   func(c *Config) { c.BoilerplatePatterns = append(c.BoilerplatePatterns, " ") },
		"no patterns":     func(c *Config) { c.BoilerplatePatterns = nil },
	}
	for name, mod := range bad {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			mod(&c)
			if _, err := New(c); err == nil {
				t.Errorf("New accepted %+v", c)
			}
		})
	}
	if got := Rules(); len(got) != 18 || got[0] != RuleMinChars || got[17] != RuleDup10Gram {
		t.Errorf("Rules() = %v", got)
	}
	if _, ok := must(New(Config{})).Check(""); !ok {
		t.Errorf("zero Config rejected the empty text")
	}
}

func must(f *Filter, err error) *Filter {
	if err != nil {
		panic(err)
	}
	return f
}
