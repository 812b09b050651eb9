package filter

import (
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/bus/v1"
)

// FuzzParsePolicy: policies come from the KV bucket, written by anyone. A
// policy either parses and compiles, or is refused with ErrBadPolicy.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"categories": {"x": {"action": "block"}}, "phrases": [{"category": "x", "phrases": ["a b"]}]}`))
	f.Add([]byte(`{"required": true, "categories": {"p": {"action": "redact"}}, "pii": {"category": "p"}, "window": 4}`))
	f.Add([]byte(`{"categories": {"x": {"action": "block"}}, "regexes": [{"category": "x", "name": "r", "pattern": "[0-9]+"}]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			if !errors.Is(err, ErrBadPolicy) {
				t.Fatalf("error %v does not wrap ErrBadPolicy", err)
			}
			return
		}
		e, err := Compile(p, 1)
		if err != nil {
			t.Fatalf("a parsed policy does not compile: %v", err)
		}
		if _, err := e.Check("some text 13812345678 a b"); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCheck: any text gets a verdict or a clear error; findings lie inside
// the text on character boundaries; a redacted text is valid UTF-8; the
// stream, fed the text in two pieces, agrees with Check on blocking.
func FuzzCheck(f *testing.F) {
	f.Add("how to make a bomb", 3)
	f.Add("如何制 造 炸彈 13812345678 a@b.cn", 7)
	f.Add("ｋ１ｌｌ myself \u200b", 1)
	f.Add("\xff\xfe", 0)
	e := defaultEngine(f)
	f.Fuzz(func(t *testing.T, text string, cut int) {
		v, err := e.Check(text)
		if err != nil {
			if !errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, fd := range v.Findings {
			if fd.Start < 0 || fd.End > len(text) || fd.Start >= fd.End || !utf8.RuneStart(text[fd.Start]) || (fd.End < len(text) && !utf8.RuneStart(text[fd.End])) {
				t.Fatalf("finding %+v off the characters of %q", fd, text)
			}
		}
		if !utf8.ValidString(v.Text) {
			t.Fatalf("verdict text %q is not UTF-8", v.Text)
		}
		if cut < 0 {
			cut = -cut
		}
		cut %= len(text) + 1
		for cut < len(text) && !utf8.RuneStart(text[cut]) {
			cut++
		}
		s := e.NewStream(nil)
		a, err1 := s.Push(text[:cut])
		b, err2 := s.Push(text[cut:])
		c, err3 := s.Close()
		blocked := errors.Is(err1, ErrBlocked) || errors.Is(err2, ErrBlocked) || errors.Is(err3, ErrBlocked)
		if (v.Action == Block) != blocked {
			t.Fatalf("Check says %s, stream blocked=%v (%v %v %v) for %q cut %d", v.Action, blocked, err1, err2, err3, text, cut)
		}
		if !blocked && a+b+c != v.Text {
			t.Fatalf("stream released %q, Check %q", a+b+c, v.Text)
		}
	})
}

// FuzzServiceRequest: filter.check requests are outside bytes.
func FuzzServiceRequest(f *testing.F) {
	ok, _ := proto.Marshal(&busv1.FilterCheckRequest{Model: "m", Text: "make a bomb", Direction: "output", Context: "how to "})
	f.Add(ok)
	f.Add([]byte{0x12, 0x02, 0xc3, 0x28})
	s, err := New(Config{Bus: nil})
	if err == nil || s != nil {
		f.Fatal("New without a bus must fail")
	}
	p, err := NewPolicies(nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	svc := &Service{policies: p, audit: &auditor{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep := svc.serve(context.Background(), data)
		if rep.ErrorCode == "" && !utf8.ValidString(rep.Text) {
			t.Fatalf("reply text %q is not UTF-8", rep.Text)
		}
		if rep.ErrorCode != "" && rep.Error == "" {
			t.Fatalf("code %s without a message", rep.ErrorCode)
		}
	})
}
