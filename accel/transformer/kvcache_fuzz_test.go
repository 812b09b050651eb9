package transformer

import (
	"errors"
	"testing"
)

// checkCache verifies the cache's bookkeeping: every block's reference
// count equals the sequence tables that hold it, free blocks are
// unreferenced and unregistered, the FIFO of kept blocks holds exactly the
// unreferenced registered blocks, and the prefix map points at registered
// blocks.
func checkCache(t *testing.T, c *kvCache) {
	t.Helper()
	refs := make([]int32, len(c.data))
	for id, s := range c.seqs {
		if len(s.table)*KVBlockTokens < s.n {
			t.Fatalf("sequence %d: %d positions in %d blocks", id, s.n, len(s.table))
		}
		for _, b := range s.table {
			if b != noBlock {
				refs[b]++
			}
		}
	}
	inFree := make([]bool, len(c.data))
	for _, b := range c.free {
		if inFree[b] || c.ref[b] != 0 || c.hashed[b] {
			t.Fatalf("free block %d: twice %v, ref %d, registered %v", b, inFree[b], c.ref[b], c.hashed[b])
		}
		inFree[b] = true
	}
	kept := 0
	for b := c.head; b != noBlock; b = c.next[b] {
		if c.ref[b] != 0 || !c.hashed[b] || inFree[b] {
			t.Fatalf("kept block %d: ref %d, registered %v, free %v", b, c.ref[b], c.hashed[b], inFree[b])
		}
		kept++
	}
	if kept != c.nCached {
		t.Fatalf("%d kept blocks in the queue, counted %d", kept, c.nCached)
	}
	for b := range c.data {
		if refs[b] != c.ref[b] {
			t.Fatalf("block %d: ref %d, held by %d sequences", b, c.ref[b], refs[b])
		}
		if c.ref[b] == 0 && !inFree[b] && !c.hashed[b] {
			t.Fatalf("block %d is lost: unreferenced, not free, not kept", b)
		}
	}
	for h, b := range c.prefix {
		if !c.hashed[b] || c.hash[b] != h {
			t.Fatalf("prefix entry %x points at block %d (registered %v, hash %x)", h, b, c.hashed[b], c.hash[b])
		}
	}
	if c.available() < 0 || len(c.data) > c.budget {
		t.Fatalf("available %d, allocated %d of budget %d", c.available(), len(c.data), c.budget)
	}
}

// FuzzDecodeSteps drives a small decoder with steps, releases and early
// exits decoded from the input, and checks that it never panics, that
// errors are the documented ones and leave the lengths unchanged, and that
// the cache's bookkeeping holds after every call.
func FuzzDecodeSteps(f *testing.F) {
	f.Add([]byte{0x11, 0x23, 0x05, 0x40, 0x91, 0x33, 0x02, 0x17, 0xf0, 0x21})
	f.Add([]byte{0x3f, 0x3f, 0x3f, 0x3f, 0x01, 0x01, 0x81, 0x02, 0x02})
	cfg := Config{VocabSize: 7, NCtx: 40, NEmbd: 8, NLayer: 2, NHead: 2, Positions: PositionsRoPE, AttnWindow: 20, AttnGlobal: 2, ExitLayers: []int{1}}
	m := New(cfg, PortableKernels(), 1)
	randomize(m, 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(m, 6)
		for len(data) >= 2 {
			op, arg := data[0], data[1]
			data = data[2:]
			id := uint64(op & 3)
			if op&0x80 != 0 {
				d.Release(id)
				checkCache(t, d.cache)
				continue
			}
			// One or two sequences; token count from arg, tokens from the
			// following bytes (a repeated prompt exercises prefix reuse).
			var seqs []DecodeSeq
			for k := range 1 + int(op>>6&1) {
				n := 1 + int(arg>>(4*k)&15)*3
				toks := make([]int32, n)
				for i := range toks {
					if i < len(data) {
						toks[i] = int32(data[i] % 7)
					}
				}
				seqs = append(seqs, DecodeSeq{ID: (id + uint64(k)) & 3, Tokens: toks})
			}
			before := map[uint64]int{}
			for _, s := range seqs {
				before[s.ID] = d.Len(s.ID)
			}
			th := float32(op>>2&3) * 0.3
			res, err := d.Step(seqs, nil, th)
			switch {
			case err == nil:
				for i, s := range seqs {
					if res.Cached[i] != before[s.ID]+len(s.Tokens) || res.Cached[i] != d.Len(s.ID) {
						t.Fatalf("id %d: cached %d, was %d, appended %d", s.ID, res.Cached[i], before[s.ID], len(s.Tokens))
					}
				}
			case errors.Is(err, ErrKVCacheFull), errors.Is(err, ErrInvalidInput):
				for id, n := range before {
					if d.Len(id) != n {
						t.Fatalf("failed step (%v) changed id %d: %d -> %d", err, id, n, d.Len(id))
					}
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
			checkCache(t, d.cache)
		}
	})
}
