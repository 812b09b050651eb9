package pii

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// carriers are sentences a value is planted into at %s: Chinese and English,
// the value next to full-width and ASCII punctuation, at the start and end.
var carriers = []string{
	"%s",
	"联系电话：%s，请于工作日拨打。",
	"当事人（%s）已确认收到本判决书。",
	"请将材料发送至%s。",
	"原告张某，号码为%s；被告李某。",
	"“%s”",
	"【%s】",
	"根据第十二条规定，2023年1月1日登记信息为%s",
	"The applicant's details are %s.",
	"Contact: %s; reply within 30 days.",
	"(see %s)",
	"Record 12 of 2024 lists %s, which was verified on 2024-01-31.",
	"%s is on file",
	"\t%s\n",
}

// passportCarriers put a context word before the value.
var passportCarriers = []string{
	"护照号码：%s，有效期至2030年。",
	"持中国护照（%s）入境。",
	"护照号%s",
	"Passport No. %s was issued in 2019.",
	"passport number: %s.",
	"his PASSPORT (%s) expired",
}

const planted = 2000

func carrierFor(t Type, r *rand.Rand) string {
	if t == Passport {
		return passportCarriers[r.IntN(len(passportCarriers))]
	}
	return carriers[r.IntN(len(carriers))]
}

// TestRecall plants 2000 Fake values of each type in carrier sentences and
// requires that at least 99% come back with the exact span and type, and
// that nothing else in the sentence is reported.
func TestRecall(t *testing.T) {
	s, _ := New(Config{})
	for _, typ := range Types() {
		t.Run(string(typ), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(typ))))
			hits, extra := 0, 0
			var misses []string
			for range planted {
				v := Fake(typ, r)
				c := carrierFor(typ, r)
				text := fmt.Sprintf(c, v)
				at := strings.Index(c, "%s")
				want := Match{typ, at, at + len(v)}
				found := false
				for _, m := range s.Find(text) {
					if m == want {
						found = true
					} else {
						extra++
					}
				}
				if found {
					hits++
				} else if len(misses) < 5 {
					misses = append(misses, fmt.Sprintf("%q in %q: %v", v, text, s.Find(text)))
				}
			}
			recall := float64(hits) / planted
			t.Logf("%s: recall %.4f (%d/%d), other matches %d", typ, recall, hits, planted, extra)
			if recall < 0.99 {
				t.Errorf("recall %.4f < 0.99; misses: %s", recall, strings.Join(misses, "; "))
			}
			if extra > 0 {
				t.Errorf("%d matches other than the planted value", extra)
			}
		})
	}
}

// TestNearMisses plants 2000 FakeInvalid values of each type, in the same
// carriers (passports after a context word), and requires no match at all.
func TestNearMisses(t *testing.T) {
	s, _ := New(Config{})
	for _, typ := range Types() {
		t.Run(string(typ), func(t *testing.T) {
			r := rand.New(rand.NewPCG(2, uint64(len(typ))))
			bad := 0
			for range planted {
				v := FakeInvalid(typ, r)
				text := fmt.Sprintf(carrierFor(typ, r), v)
				if ms := s.Find(text); len(ms) > 0 {
					if bad < 5 {
						t.Errorf("near miss %q detected in %q: %v", v, text, spans(text, ms))
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d near misses detected", bad, planted)
			}
		})
	}
}
