package tensor

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// A vtable entry that starts on the vtable's last byte (an odd vtable
// size) is present to the flatbuffers runtime, so the check must see it
// too: here it points past the buffer.
func TestFieldOddVTableSize(t *testing.T) {
	b := fbuf{
		0, 0, 0, 0, // (unused root offset)
		9, 0, // vtable at 4: 9 bytes
		17, 0, // table size
		0, 0, // slot 0 absent
		0, 0, // slot 1 absent
		4,          // slot 2: low byte here, high byte is the table's first
		9, 0, 0, 0, // table at 13: vtable 9 bytes back
		0, 0, 0, 0,
	}
	tb, err := b.table(13)
	if err != nil {
		t.Fatal(err)
	}
	for slot, want := range map[int]bool{0: false, 1: false, 2: true, 3: false} {
		p, err := tb.field(slot)
		if got := p != 0 || err != nil; got != want {
			t.Errorf("slot %d: field at %d, err %v; present = %v, want %v", slot, p, err, got, want)
		}
	}
	if _, err := tb.field(2); !errors.Is(err, ErrMalformed) {
		t.Errorf("slot 2 (offset 0x0904) = %v, want ErrMalformed: out of the buffer", err)
	}
}

// The payload the fuzzer found: a schema whose vtable is 9 bytes long
// hides its custom_metadata entry from a check that wants both bytes of
// the entry inside the vtable; arrow-go then read a vector length of
// 402,653,184 key-value pairs from it and allocated 12 GiB of strings.
// It must be refused, and before anything large is allocated.
func TestDecodeOddVTableSize(t *testing.T) {
	payload := corpusBytes(t, "testdata/fuzz/FuzzDecode/odd-vtable-size")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decode(payload, Limits{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("Decode = %v, want ErrMalformed", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("Decode of a %d-byte payload allocated %d bytes", len(payload), n)
	}
}

// corpusBytes reads a one-[]byte file of Go's fuzzing corpus format.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a one-value fuzz corpus file", path)
	}
	s, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok {
		t.Fatalf("%s: value is not a []byte", path)
	}
	b, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(b)
}
