package tbevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// CRC-32C of "123456789" is 0xe3069283 (RFC 3720's check value).
func TestCRC32C(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xe3069283 {
		t.Fatalf("crc32c = %#x", got)
	}
	c := uint32(0xe3069283)
	if got, want := maskedCRC([]byte("123456789")), ((c>>15)|(c<<17))+0xa282ead8; got != want {
		t.Fatalf("masked = %#x, want %#x", got, want)
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "job"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(w.Path()), "events.out.tfevents.") {
		t.Errorf("file name %s", w.Path())
	}
	wall := time.Unix(1700000000, 250_000_000)
	for step := range int64(3) {
		for _, tag := range []string{"loss", "lr"} {
			if err := w.Scalar(tag, step+1, 1/float64(step+2), wall); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	evs, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 || evs[0].FileVersion != "brain.Event:2" {
		t.Fatalf("events = %+v", evs)
	}
	var got []string
	for _, e := range evs[1:] {
		// Wall time is float64 seconds: exact to about a microsecond.
		if d := e.Wall.Sub(wall); d < -time.Microsecond || d > time.Microsecond || !e.HasValue {
			t.Errorf("event %+v", e)
		}
		got = append(got, e.Tag)
		if want := float32(1 / float64(e.Step+1)); e.Value != want {
			t.Errorf("%s at %d = %v, want %v", e.Tag, e.Step, e.Value, want)
		}
	}
	if diff := cmp.Diff([]string{"loss", "lr", "loss", "lr", "loss", "lr"}, got); diff != "" {
		t.Error(diff)
	}
	// The first record's bytes, by hand: length, masked CRC of the
	// length, then the data and its masked CRC.
	n := binary.LittleEndian.Uint64(data)
	if binary.LittleEndian.Uint32(data[8:]) != maskedCRC(data[:8]) || binary.LittleEndian.Uint32(data[12+n:]) != maskedCRC(data[12:12+n]) {
		t.Error("first record's checksums do not match")
	}
	// A flipped bit is caught.
	bad := bytes.Clone(data)
	bad[len(bad)-6] ^= 1
	if _, err := Read(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupted file: %v, want ErrCorrupt", err)
	}
}

func FuzzRead(f *testing.F) {
	tw, err := Create(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	_ = tw.Scalar("loss", 3, 1.5, time.Unix(1, 0))
	_ = tw.Close()
	data, err := os.ReadFile(tw.Path())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Read(bytes.NewReader(b)); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}
