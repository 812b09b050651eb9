package filter

import (
	"strings"
	"testing"
)

func BenchmarkStreamPush(b *testing.B) {
	e := defaultEngine(b)
	text := strings.Repeat("第二百三十二条 故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑。Licensed under the Apache License, Version 2.0. ", 4)
	toks := splitRandom(newRand(), text)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		s := e.NewStream(nil)
		for _, t := range toks {
			if _, err := s.Push(t); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		n += len(toks)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1e3, "µs/token")
}

func BenchmarkCheck(b *testing.B) {
	e := defaultEngine(b)
	text := strings.Repeat("第二百三十二条 故意杀人的，处死刑、无期徒刑或者十年以上有期徒刑。Licensed under the Apache License, Version 2.0. ", 20)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		e.Check(text)
	}
}
