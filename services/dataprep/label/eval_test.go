package label

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/llmesh/llmesh/services/dataprep/democorpus"
	"github.com/llmesh/llmesh/services/internal/corpus/corpustest"
)

// goldDoc is a document with its true type.
type goldDoc struct {
	Doc
	source string
	gold   int
}

func classOf(name string) int {
	for i, l := range DefaultLabels {
		if l == name {
			return i
		}
	}
	panic(name)
}

func demoDocs(seed uint64, n int) []goldDoc {
	var out []goldDoc
	for _, d := range democorpus.Generate(seed, n) {
		g := Contract
		if d.Kind == democorpus.KindJudgment {
			g = Judgment
		}
		out = append(out, goldDoc{Doc{d.Title, d.Text}, "demo", classOf(g)})
	}
	return out
}

var (
	subjects = []string{"森林", "草原", "港口", "邮政", "档案", "统计", "测绘", "气象", "种子", "商标", "专利", "广告", "拍卖", "保险", "证券", "旅游", "公路", "铁路", "电力", "煤炭"}
	duties   = []string{
		"县级以上人民政府应当将%s工作纳入国民经济和社会发展规划。",
		"国家鼓励和支持%s领域的科学研究和技术创新。",
		"任何单位和个人都有权对违反%s管理规定的行为进行检举和控告。",
		"从事%s活动，应当遵循公平、诚信的原则，不得损害社会公共利益。",
		"%s主管部门应当建立健全监督检查制度，依法履行监督管理职责。",
		"违反规定从事%s活动的，由主管部门责令改正，没收违法所得，并处罚款。",
		"%s经营者应当依法取得许可，并在许可范围内从事经营活动。",
		"国家建立%s信息公开制度，及时向社会公布有关信息。",
	}
	chapters = []string{"监督管理", "法律责任", "权利和义务", "经营规则", "保障措施"}
)

// lawDocs makes statutes and regulations from templates: the demo corpus
// has neither.
func lawDocs(seed uint64, n int) []goldDoc {
	r := rand.New(rand.NewPCG(seed, 99))
	var out []goldDoc
	for i := range n {
		x := subjects[r.IntN(len(subjects))]
		var b strings.Builder
		statute := i%2 == 0
		var title, self string
		if statute {
			title, self = "中华人民共和国"+x+"法", "本法"
			fmt.Fprintf(&b, "%s\n\n（%d年%d月%d日第十%s届全国人民代表大会常务委员会第%d次会议通过）\n\n", title, 1990+r.IntN(30), 1+r.IntN(12), 1+r.IntN(28), []string{"一", "二", "三"}[r.IntN(3)], 2+r.IntN(20))
		} else {
			suffix := []string{"管理条例", "管理办法", "实施细则", "若干规定"}[r.IntN(4)]
			title = x + suffix
			self = "本" + suffix[len(suffix)-6:]
			fmt.Fprintf(&b, "%s\n\n（%d年%d月%d日国务院令第%d号公布）\n\n", title, 1990+r.IntN(30), 1+r.IntN(12), 1+r.IntN(28), 100+r.IntN(600))
		}
		art := 1
		numerals := []string{"一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二", "十三", "十四", "十五", "十六", "十七", "十八", "十九", "二十"}
		nch := 1 + r.IntN(3)
		for c := range nch {
			name := "总则"
			if c > 0 {
				name = chapters[r.IntN(len(chapters))]
			}
			if nch > 1 {
				fmt.Fprintf(&b, "第%s章 %s\n\n", numerals[c], name)
			}
			for range 2 + r.IntN(4) {
				if art == 1 {
					if statute {
						fmt.Fprintf(&b, "第一条 为了规范%s活动，保护当事人的合法权益，制定本法。\n\n", x)
					} else {
						fmt.Fprintf(&b, "第一条 为了加强%s管理，根据《中华人民共和国%s法》，制定%s。\n\n", x, x, self)
					}
				} else {
					fmt.Fprintf(&b, "第%s条 "+duties[r.IntN(len(duties))]+"\n\n", numerals[min(art-1, 19)], x)
					if r.IntN(3) == 0 {
						fmt.Fprintf(&b, "依照%s规定，有关部门应当依法处理。\n\n", self)
					}
				}
				art++
			}
		}
		fmt.Fprintf(&b, "第%s条 %s自%d年%d月%d日起施行。\n", numerals[min(art-1, 19)], self, 2000+r.IntN(20), 1+r.IntN(12), 1+r.IntN(28))
		g := Regulation
		if statute {
			g = Statute
		}
		out = append(out, goldDoc{Doc{title, b.String()}, "templates", classOf(g)})
	}
	return out
}

// cnLawDocs reads the laws of ../shared/data/cn-law.jsonl.gz whose type
// the title gives away; nil when the corpus is absent.
func cnLawDocs(t *testing.T) []goldDoc {
	if corpustest.Dir() == "" {
		t.Logf("skipping the cn-law part: no shared/data above the working directory")
		return nil
	}
	var out []goldDoc
	for _, d := range corpustest.Docs(t, "cn-law.jsonl.gz") {
		var g string
		switch {
		case isLawTitle(d.Title):
			g = Statute
		case strings.Contains(d.Title, "条例") || strings.Contains(d.Title, "规定"):
			g = Regulation
		default:
			continue
		}
		out = append(out, goldDoc{Doc{d.Title, d.Text}, "cn-law", classOf(g)})
	}
	return out
}

type tally struct{ right, total int }

func (t tally) String() string {
	if t.total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f (%d/%d)", float64(t.right)/float64(t.total), t.right, t.total)
}

func (t *tally) add(ok bool) {
	t.total++
	if ok {
		t.right++
	}
}

// TestEvaluateDefaultConfig labels the demo corpus, template statutes and
// regulations and, where present, the laws of ../shared/data, and checks
// that the label model beats majority vote where the functions conflict.
func TestEvaluateDefaultConfig(t *testing.T) {
	docs := append(demoDocs(11, 1500), lawDocs(5, 200)...)
	docs = append(docs, cnLawDocs(t)...)
	plain := make([]Doc, len(docs))
	for i := range docs {
		plain[i] = docs[i].Doc
	}
	cfg := DefaultConfig()
	m := Apply(cfg, plain)
	mv := MajorityVote(m)
	lm, err := FitLabelModel(m, len(cfg.Labels), FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pred, _ := lm.Predict(m)
	lmAcc, err := FitLabelModel(m, len(cfg.Labels), FitOptions{Model: ModelAccuracy})
	if err != nil {
		t.Fatal(err)
	}
	predAcc, _ := lmAcc.Predict(m)

	var all, conflict [4]tally // mv, mv with ties to the lowest label, lm confusion, lm accuracy
	bySource := map[string]*[4]tally{}
	for i, d := range docs {
		row := m.Row(i)
		counts := make([]int, len(cfg.Labels))
		distinct := map[int8]bool{}
		for _, v := range row {
			if v >= 0 {
				counts[v]++
				distinct[v] = true
			}
		}
		lowest := Abstain
		for y, c := range counts {
			if c > 0 && (lowest == Abstain || c > counts[lowest]) {
				lowest = y
			}
		}
		oks := [4]bool{mv[i] == d.gold, lowest == d.gold, pred[i] == d.gold, predAcc[i] == d.gold}
		src := bySource[d.source]
		if src == nil {
			src = &[4]tally{}
			bySource[d.source] = src
		}
		for k, ok := range oks {
			all[k].add(ok)
			src[k].add(ok)
			if len(distinct) > 1 {
				conflict[k].add(ok)
			}
		}
	}
	t.Logf("iterations %d, converged %v", lm.Iterations, lm.Converged)
	t.Logf("%-12s %-22s %-22s %-22s %-22s", "documents", "majority vote", "MV, ties→lowest", "label model", "label model (accuracy)")
	row := func(name string, ts [4]tally) {
		t.Logf("%-12s %-22s %-22s %-22s %-22s", name, ts[0], ts[1], ts[2], ts[3])
	}
	row("all", all)
	row("conflicting", conflict)
	for _, s := range []string{"demo", "templates", "cn-law"} {
		if ts := bySource[s]; ts != nil {
			row(s, *ts)
		}
	}
	rep := lm.Report(m)
	for _, f := range rep.Functions {
		t.Logf("%-28s cov %.3f overlap %.3f conflict %.3f est.acc %.3f %v", f.Name, f.Coverage, f.Overlap, f.Conflict, *f.EstimatedAccuracy, f.Polarity)
	}
	rate := func(x tally) float64 { return float64(x.right) / float64(x.total) }
	if rate(conflict[2]) < rate(conflict[0]) || rate(conflict[2]) < rate(conflict[1]) {
		t.Errorf("label model %v below majority vote %v / %v on conflicting documents", conflict[2], conflict[0], conflict[1])
	}
	if rate(all[2]) < 0.95 {
		t.Errorf("label model accuracy %v, want at least 0.95", all[2])
	}
}
