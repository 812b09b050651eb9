package tensor

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// 16 MiB of float32 as [2048 2048].
func benchTensor() Tensor {
	return FromFloat32("w", []int{2048, 2048}, make([]float32, 2048*2048))
}

func BenchmarkEncode16MiB(b *testing.B) {
	ts := []Tensor{benchTensor()}
	b.SetBytes(16 << 20)
	for b.Loop() {
		if _, err := Encode(ts, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode16MiB(b *testing.B) {
	p, err := Encode([]Tensor{benchTensor()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 20)
	for b.Loop() {
		if _, err := Decode(p, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode16MiBArrowReader is the partner: arrow-go's own
// ipc.NewReader, which copies every body.
func BenchmarkDecode16MiBArrowReader(b *testing.B) {
	p, err := Encode([]Tensor{benchTensor()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 20)
	for b.Loop() {
		r, err := ipc.NewReader(bytes.NewReader(p))
		if err != nil {
			b.Fatal(err)
		}
		for r.Next() {
		}
		if r.Err() != nil {
			b.Fatal(r.Err())
		}
		r.Release()
	}
}
