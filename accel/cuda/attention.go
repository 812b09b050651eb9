package cuda

import (
	"fmt"
	"math"
)

// AttentionKernels is fused causal attention (kernels/attention.cu):
// tiled so that no T×T score matrix is ever written, with the sliding
// window and global tokens of transformer.Config.Visible.
type AttentionKernels interface {
	// Attention computes o = softmax(scale·q·kᵀ, masked)·v for bh
	// (batch, head) slices of t rows of hd, all (bh, t, hd) row-major,
	// and the per-row logsumexp lse (bh, t) the backward pass needs.
	Attention(o, lse, q, k, v []float32, a AttentionShape) error
	// AttentionBackward computes dq, dk and dv from dout, with o and lse
	// from the forward pass.
	AttentionBackward(dq, dk, dv, dout, q, k, v, o, lse []float32, a AttentionShape) error
}

// AttentionShape sizes one attention call.
type AttentionShape struct {
	BH, T, HD int     // (batch·heads), sequence length, head dimension
	Scale     float32 // usually 1/√HD
	// Window > 0 limits each query to itself and the Window−1 keys before
	// it; Global keeps the first Global keys visible to every query.
	Window, Global int
}

// MaxAttentionHeadDim is the largest head dimension the kernels take (it
// sizes their registers and shared memory: ATT_MAX_HD).
const MaxAttentionHeadDim = 128

// attention kernel launch geometry (ATT_Q in attention.cu).
const attnRows = 64

func (a AttentionShape) check(op string, sizes map[string]int) error {
	if a.BH < 0 || a.T < 0 || a.HD <= 0 || a.HD > MaxAttentionHeadDim || a.Window < 0 || a.Global < 0 {
		return fmt.Errorf("cuda %s: bad shape %+v (head dim 1..%d)", op, a, MaxAttentionHeadDim)
	}
	n := a.BH * a.T * a.HD
	if n > math.MaxInt32 || a.BH > 65535 {
		return fmt.Errorf("cuda %s: shape %+v is too large", op, a)
	}
	for name, got := range sizes {
		want := n
		if name == "lse" {
			want = a.BH * a.T
		}
		if got < want {
			return fmt.Errorf("cuda %s: %s has %d elements, needs %d", op, name, got, want)
		}
	}
	return nil
}

func (a AttentionShape) grid() Dim3 {
	return Dim3{X: uint32((a.T + attnRows - 1) / attnRows), Y: uint32(a.BH)}
}

func (k *Kernels) Attention(o, lse, q, kk, v []float32, a AttentionShape) error {
	if err := a.check("attention", map[string]int{"o": len(o), "lse": len(lse), "q": len(q), "k": len(kk), "v": len(v)}); err != nil {
		return err
	}
	n, rows := a.BH*a.T*a.HD, a.BH*a.T
	if n == 0 {
		return nil
	}
	return k.run(func(m *Module) error {
		var in [3]DevicePtr
		for i, s := range [][]float32{q, kk, v} {
			var err error
			if in[i], err = k.put(i, s[:n]); err != nil {
				return err
			}
		}
		po, err := k.alloc(3, n)
		if err != nil {
			return err
		}
		plse, err := k.alloc(4, rows)
		if err != nil {
			return err
		}
		if err := m.launch("flash_attn_forward", a.grid(), Dim3{X: attnRows},
			in[0], in[1], in[2], po, plse, a.T, a.HD, a.Scale, a.Window, a.Global); err != nil {
			return err
		}
		if err := k.d.dtoh(o[:n], po); err != nil {
			return err
		}
		return k.d.dtoh(lse[:rows], plse)
	})
}

func (k *Kernels) AttentionBackward(dq, dk, dv, dout, q, kk, v, o, lse []float32, a AttentionShape) error {
	if err := a.check("attention backward", map[string]int{
		"dq": len(dq), "dk": len(dk), "dv": len(dv), "dout": len(dout),
		"q": len(q), "k": len(kk), "v": len(v), "o": len(o), "lse": len(lse),
	}); err != nil {
		return err
	}
	n, rows := a.BH*a.T*a.HD, a.BH*a.T
	if n == 0 {
		return nil
	}
	return k.run(func(m *Module) error {
		var in [6]DevicePtr // q, k, v, dout, o, lse
		for i, s := range [][]float32{q[:n], kk[:n], v[:n], dout[:n], o[:n], lse[:rows]} {
			var err error
			if in[i], err = k.put(i, s); err != nil {
				return err
			}
		}
		var out [4]DevicePtr // D, dq, dk, dv
		for i, size := range []int{rows, n, n, n} {
			var err error
			if out[i], err = k.alloc(6+i, size); err != nil {
				return err
			}
		}
		if err := m.launch("attn_row_dot", blocks(rows, threads), Dim3{X: threads}, in[3], in[4], out[0], rows, a.HD); err != nil {
			return err
		}
		if err := m.launch("flash_attn_backward_dq", a.grid(), Dim3{X: attnRows},
			in[0], in[1], in[2], in[3], in[5], out[0], out[1], a.T, a.HD, a.Scale, a.Window, a.Global); err != nil {
			return err
		}
		if err := m.launch("flash_attn_backward_dkv", a.grid(), Dim3{X: attnRows},
			in[0], in[1], in[2], in[3], in[5], out[0], out[2], out[3], a.T, a.HD, a.Scale, a.Window, a.Global); err != nil {
			return err
		}
		for i, dst := range [][]float32{dq[:n], dk[:n], dv[:n]} {
			if err := k.d.dtoh(dst, out[1+i]); err != nil {
				return err
			}
		}
		return nil
	})
}
