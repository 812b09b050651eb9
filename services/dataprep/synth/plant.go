package synth

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/pii"
)

// contextWords precede a planted value ("<context><value>" on its own
// line), in Chinese and in English.
var contextWords = map[pii.Type][2]string{
	pii.Email:      {"电子邮箱：", "Email: "},
	pii.CNMobile:   {"手机号码：", "Mobile: "},
	pii.CNLandline: {"固定电话：", "Tel: "},
	pii.CNID:       {"身份证号码：", "ID card No.: "},
	pii.BankCard:   {"银行卡号：", "Bank card No.: "},
	pii.Passport:   {"护照号码：", "Passport No.: "},
	pii.IPv4:       {"登录IP地址：", "IP address: "},
	pii.USSSN:      {"美国社会安全号码：", "SSN: "},
	pii.USPhone:    {"美国联系电话：", "US phone: "},
}

type insertion struct {
	pos         int // byte offset of a line start in the original text
	line, typ   string
	valueOffset int // of the value inside line
	valueLen    int
	seq         int
}

// plantPII inserts perType values of every pii type into documents drawn
// from free, each as its own line at a random line start, and returns the
// spans in the final texts.
func plantPII(r *rand.Rand, docs []Doc, free []int, perType int) []Planted {
	if len(free) == 0 || perType == 0 {
		return nil
	}
	byDoc := map[int][]insertion{}
	seq := 0
	for _, t := range pii.Types() {
		for range perType {
			d := free[r.IntN(len(free))]
			value := pii.Fake(t, r)
			ctx, ok := contextWords[t]
			if !ok {
				ctx = [2]string{"联系方式：", "Contact: "}
			}
			word := ctx[1]
			if docs[d].Lang == democorpus.LangZH {
				word = ctx[0]
			}
			starts := lineStarts(docs[d].Text)
			byDoc[d] = append(byDoc[d], insertion{
				pos: starts[r.IntN(len(starts))], line: word + value + "\n", typ: string(t),
				valueOffset: len(word), valueLen: len(value), seq: seq,
			})
			seq++
		}
	}
	var out []Planted
	for _, d := range slices.Sorted(maps.Keys(byDoc)) {
		ins := byDoc[d]
		slices.SortStableFunc(ins, func(a, b insertion) int { return cmp.Or(cmp.Compare(a.pos, b.pos), cmp.Compare(a.seq, b.seq)) })
		text := docs[d].Text
		var b strings.Builder
		last := 0
		for _, in := range ins {
			b.WriteString(text[last:in.pos])
			last = in.pos
			start := b.Len() + in.valueOffset
			out = append(out, Planted{Doc: d, Start: start, End: start + in.valueLen, Type: in.typ})
			b.WriteString(in.line)
		}
		b.WriteString(text[last:])
		docs[d].Text = b.String()
	}
	return out
}

// lineStarts lists the byte offsets where a line starts, the first line
// (the title) excluded when there is another.
func lineStarts(text string) []int {
	var s []int
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' && i+1 < len(text) {
			s = append(s, i+1)
		}
	}
	if len(s) == 0 {
		s = []int{0}
	}
	return s
}
