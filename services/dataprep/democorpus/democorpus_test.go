package democorpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(7, 200), Generate(7, 200)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different documents (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(a[:50], Generate(7, 50)); diff != "" {
		t.Fatalf("document i depends on n (-n=200 +n=50):\n%s", diff)
	}
	if cmp.Equal(a, Generate(8, 200)) {
		t.Fatal("seeds 7 and 8 gave the same documents")
	}
	if !bytes.Equal(Bytes(7, 20), Bytes(7, 20)) {
		t.Fatal("Bytes is not deterministic")
	}
}

func TestGenerateMix(t *testing.T) {
	docs := Generate(1, 2000)
	langs := map[string]int{}
	kinds := map[string]map[string]int{LangZH: {}, LangEN: {}}
	ids := map[string]bool{}
	for _, d := range docs {
		langs[d.Lang]++
		kinds[d.Lang][d.Kind]++
		if ids[d.ID] {
			t.Errorf("duplicate id %q", d.ID)
		}
		ids[d.ID] = true
		if !utf8.ValidString(d.Text) || !utf8.ValidString(d.Title) {
			t.Errorf("%s: invalid UTF-8", d.ID)
		}
		if n := utf8.RuneCountInString(d.Text); n < 300 || n > 2500 {
			t.Errorf("%s: %d characters, want 300..2500", d.ID, n)
		}
		if d.Title == "" {
			t.Errorf("%s: empty title", d.ID)
		}
	}
	if zh := float64(langs[LangZH]) / float64(len(docs)); zh < 0.75 || zh > 0.85 {
		t.Errorf("Chinese share %.3f, want about %.2f", zh, ChineseShare)
	}
	for _, lang := range []string{LangZH, LangEN} {
		for _, k := range Kinds {
			if kinds[lang][k] == 0 {
				t.Errorf("no %s %s documents", lang, k)
			}
		}
	}
}

func TestStructure(t *testing.T) {
	want := map[string][]string{
		"zh/" + KindSale:       {"买卖合同", "甲方", "乙方", "第一条", "人民币", "元整"},
		"zh/" + KindLease:      {"房屋租赁合同", "租金", "第二条"},
		"zh/" + KindEmployment: {"劳动合同", "劳动者（乙方）"},
		"zh/" + KindLoan:       {"借款合同", "出借人（甲方）"},
		"zh/" + KindJudgment:   {"民事判决书", "民初", "原告", "被告", "诉讼请求", "本院认为", "判决如下", "案件受理费"},
		"en/" + KindSale:       {"This Agreement is made on", "WHEREAS", "Article 1", "IN WITNESS WHEREOF"},
		"en/" + KindJudgment:   {"Case No.", "The Court finds", "IT IS ORDERED"},
	}
	seen := map[string]bool{}
	for _, d := range Generate(3, 500) {
		key := d.Lang + "/" + d.Kind
		for _, s := range want[key] {
			if !bytes.Contains([]byte(d.Text), []byte(s)) {
				t.Errorf("%s (%s): text lacks %q", d.ID, key, s)
			}
		}
		seen[key] = true
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no %s document in 500", key)
		}
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	docs := Generate(11, 100)
	data := Bytes(11, 100)
	var got []Document
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d Document
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %d: %v", len(got)+1, err)
		}
		got = append(got, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(docs, got); diff != "" {
		t.Fatalf("JSONL round trip (-want +got):\n%s", diff)
	}
}

func TestNumerals(t *testing.T) {
	tests := map[string]struct {
		got, want string
	}{
		"capital":        {capitalYuan(123000), "壹拾贰万叁仟元整"},
		"capital zeros":  {capitalYuan(1078400), "壹佰零柒万捌仟肆佰元整"},
		"capital gap":    {capitalYuan(100050000), "壹亿零伍万元整"},
		"capital inner":  {capitalYuan(120003), "壹拾贰万零叁元整"},
		"lower ten":      {lowerNumber(12), "十二"},
		"lower hundreds": {lowerNumber(264), "二百六十四"},
		"figures":        {figures(1234567), "1,234,567.00"},
		"year":           {yearDigits(2023), "二〇二三"},
		"qty":            {zhQty(2), "两"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
