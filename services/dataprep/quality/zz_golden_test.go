package quality

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

func TestZZGolden(t *testing.T) {
	out := os.Getenv("GOLDEN_OUT")
	if out == "" {
		t.Skip()
	}
	f := must(New(DefaultConfig()))
	w, _ := os.Create(out)
	defer w.Close()
	for _, name := range corpora {
		for i, d := range corpus(t, name) {
			r, ok := f.Check(d)
			st := f.Stats(d)
			b, _ := json.Marshal(st)
			fmt.Fprintf(w, "%s %d %q %v %s\n", name, i, r, ok, b)
		}
	}
}
