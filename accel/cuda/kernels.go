package cuda

import (
	"embed"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/llmesh/llmesh/accel/transformer"
)

// Sources holds the CUDA C kernels, compiled at run time with NVRTC.
//
//go:embed kernels/*.cu
var Sources embed.FS

// source concatenates every file of Sources, in name order, into one
// translation unit.
func source() (string, error) {
	names, err := fs.Glob(Sources, "kernels/*.cu")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		src, err := Sources.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "// ---- %s ----\n%s\n", n, src)
	}
	return b.String(), nil
}

// Optional interfaces the CUDA kernels implement beyond
// transformer.Kernels. They are proposals for the transformer runtime,
// which today calls only Sgemm: when it adopts one it should define it
// (where it is consumed) and find it by type assertion. Each takes host
// slices and copies them to and from the device per call — a stopgap
// until the runtime keeps activations on the device.
type (
	// GELUKernels is GELU in tanh form, forward and backward.
	GELUKernels interface {
		// GELU sets out[i] = gelu(in[i]).
		GELU(out, in []float32) error
		// GELUBackward sets din[i] = dout[i]·gelu'(in[i]); din may be dout.
		GELUBackward(din, in, dout []float32) error
	}
	// CrossEntropyKernels is row softmax with cross-entropy.
	CrossEntropyKernels interface {
		// SoftmaxCrossEntropy sets losses[r] = logsumexp(logits row r) −
		// logit of targets[r] for rows×vocab logits; when grad is true it
		// overwrites logits with (softmax − onehot)·gradScale.
		SoftmaxCrossEntropy(logits []float32, targets []int32, rows, vocab int, losses []float32, gradScale float32, grad bool) error
	}
	// LayerNormKernels is the normalisation forward pass.
	LayerNormKernels interface {
		// LayerNorm normalises each of rows rows of x (rows×cols) into out,
		// saving mean and rstd per row; a nil b makes it RMSNorm.
		LayerNorm(out, mean, rstd, x, w, b []float32, rows, cols int, eps float32) error
	}
	// AdamWKernels is the fp32 AdamW update.
	AdamWKernels interface {
		// AdamW updates params and the moments m, v from grads in place.
		AdamW(params, grads, m, v []float32, p AdamWParams) error
	}
)

// AdamWParams is one AdamW step, as transformer.AdamW applies it after
// clipping: Step counts from 1; GradScale multiplies the gradients (the
// clip factor, 1 for none).
type AdamWParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Step                               int64
	GradScale                          float32
}

// Kernels runs transformer.Kernels on a Device: Sgemm through cuBLAS, the
// optional interfaces above through NVRTC-compiled kernels (compiled on
// first use). Calls are serialised on the Device's thread, so it is safe
// for concurrent use. Its device buffers grow to the largest call, are
// reused, and are freed when the Device is closed.
type Kernels struct {
	d      *Device
	blas   *cublas
	handle uintptr
	bufs   [12]buffer

	modOnce sync.Once
	mod     *Module
	modErr  error
}

var (
	_ transformer.Kernels = (*Kernels)(nil)
	_ GELUKernels         = (*Kernels)(nil)
	_ CrossEntropyKernels = (*Kernels)(nil)
	_ LayerNormKernels    = (*Kernels)(nil)
	_ AdamWKernels        = (*Kernels)(nil)
	_ AttentionKernels    = (*Kernels)(nil)
	_ PrecisionKernels    = (*Kernels)(nil)
)

// Kernels loads cuBLAS (the first of CUBLASLibraries that loads) and
// returns the device's kernels, a *Kernels; the same value on every call.
// A missing cuBLAS wraps ErrNoLibrary.
func (d *Device) Kernels() (transformer.Kernels, error) {
	d.kmu.Lock()
	defer d.kmu.Unlock()
	if d.kernels != nil {
		return d.kernels, nil
	}
	blas, err := loadCUBLAS()
	if err != nil {
		return nil, err
	}
	k := &Kernels{d: d, blas: blas}
	err = d.do(func() error {
		if err := blas.check("cublasCreate_v2", blas.create(&k.handle)); err != nil {
			return err
		}
		d.cleanup = append(d.cleanup, func() {
			for i := range k.bufs {
				d.free(&k.bufs[i])
			}
			blas.destroy(k.handle)
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cuBLAS (%s) on %s: %w", blas.lib, d.Name, err)
	}
	d.kernels = k
	return k, nil
}

// CUBLAS names the cuBLAS library loaded.
func (k *Kernels) CUBLAS() string { return k.blas.lib }

// Sgemm implements transformer.Kernels with cublasSgemm_v2 (fp32, default
// math mode: no TF32). It copies the operands to the device and C back on
// every call. Like the portable kernels it panics on sizes that do not
// fit; it also panics when the device fails, since the interface has no
// error and a failed product must not pass for a result.
func (k *Kernels) Sgemm(transA, transB bool, m, n, kk int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, kk, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	err := k.d.do(func() error {
		return sgemmVia(onThread{k}, transA, transB, m, n, kk, alpha, a, lda, b, ldb, beta, c, ldc)
	})
	if err != nil {
		panic(fmt.Sprintf("cuda: sgemm m=%d n=%d k=%d on %s: %v", m, n, kk, k.d.Name, err))
	}
}

// onThread is the gemmDevice of Kernels; its methods run on the Device's
// thread (inside do).
type onThread struct{ k *Kernels }

func (o onThread) upload(slot int, src []float32) error {
	if err := o.k.d.ensure(&o.k.bufs[slot], 4*len(src)); err != nil {
		return err
	}
	return o.k.d.htod(o.k.bufs[slot].ptr, src)
}

func (o onThread) download(dst []float32, slot int) error {
	return o.k.d.dtoh(dst, o.k.bufs[slot].ptr)
}

func (o onThread) sgemm(g gemmArgs, alpha, beta float32) error {
	k := o.k
	// C may not have been uploaded (beta 0, no gaps): size it here.
	if err := k.d.ensure(&k.bufs[slotC], 4*((g.n-1)*g.ldc+g.m)); err != nil {
		return err
	}
	st := k.blas.sgemm(k.handle, g.transa, g.transb, int32(g.m), int32(g.n), int32(g.k),
		&alpha, k.bufs[slotB].ptr, int32(g.lda), k.bufs[slotA].ptr, int32(g.ldb),
		&beta, k.bufs[slotC].ptr, int32(g.ldc))
	return k.blas.check("cublasSgemm_v2", st)
}

// module compiles Sources once.
func (k *Kernels) module() (*Module, error) {
	k.modOnce.Do(func() {
		src, err := source()
		if err != nil {
			k.modErr = err
			return
		}
		k.mod, k.modErr = k.d.Compile(src, "llmesh_kernels.cu")
	})
	return k.mod, k.modErr
}

// put copies src into buffer slot (on the thread); alloc sizes a slot for
// n floats without copying.
func (k *Kernels) put(slot int, src []float32) (DevicePtr, error) {
	err := onThread{k}.upload(slot, src)
	return k.bufs[slot].ptr, err
}

func (k *Kernels) alloc(slot, n int) (DevicePtr, error) {
	err := k.d.ensure(&k.bufs[slot], 4*n)
	return k.bufs[slot].ptr, err
}

func blocks(n, per int) Dim3 { return Dim3{X: uint32((n + per - 1) / per)} }

const threads = 256 // block size every kernel in Sources is written for

// run compiles the module if needed, then runs fn on the thread and waits
// for the device.
func (k *Kernels) run(fn func(m *Module) error) error {
	m, err := k.module()
	if err != nil {
		return err
	}
	return k.d.do(func() error {
		if err := fn(m); err != nil {
			return err
		}
		return k.d.drv.check("cuCtxSynchronize", k.d.drv.cuCtxSynchronize())
	})
}

func (k *Kernels) GELU(out, in []float32) error {
	n := len(in)
	if len(out) < n || n > math.MaxInt32 {
		return fmt.Errorf("cuda gelu: %d outputs for %d inputs", len(out), n)
	}
	if n == 0 {
		return nil
	}
	return k.run(func(m *Module) error {
		pin, err := k.put(0, in)
		if err != nil {
			return err
		}
		pout, err := k.alloc(1, n)
		if err != nil {
			return err
		}
		if err := m.launch("gelu_forward", blocks(n, threads), Dim3{X: threads}, pout, pin, n); err != nil {
			return err
		}
		return k.d.dtoh(out[:n], pout)
	})
}

func (k *Kernels) GELUBackward(din, in, dout []float32) error {
	n := len(in)
	if len(din) < n || len(dout) < n || n > math.MaxInt32 {
		return fmt.Errorf("cuda gelu backward: din %d, dout %d for %d inputs", len(din), len(dout), n)
	}
	if n == 0 {
		return nil
	}
	return k.run(func(m *Module) error {
		pin, err := k.put(0, in)
		if err != nil {
			return err
		}
		pdout, err := k.put(1, dout[:n])
		if err != nil {
			return err
		}
		pdin, err := k.alloc(2, n)
		if err != nil {
			return err
		}
		if err := m.launch("gelu_backward", blocks(n, threads), Dim3{X: threads}, pdin, pin, pdout, n); err != nil {
			return err
		}
		return k.d.dtoh(din[:n], pdin)
	})
}

func (k *Kernels) SoftmaxCrossEntropy(logits []float32, targets []int32, rows, vocab int, losses []float32, gradScale float32, grad bool) error {
	if rows < 0 || vocab <= 0 || len(logits) < rows*vocab || len(targets) < rows || len(losses) < rows || rows*vocab > math.MaxInt32 {
		return fmt.Errorf("cuda softmax cross-entropy: %d logits, %d targets, %d losses for %d rows of %d", len(logits), len(targets), len(losses), rows, vocab)
	}
	for r, t := range targets[:rows] {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("cuda softmax cross-entropy: target %d of row %d is outside the vocabulary of %d", t, r, vocab)
		}
	}
	if rows == 0 {
		return nil
	}
	// The targets travel as their bits in a float32 slot.
	tbits := make([]float32, rows)
	for i, t := range targets[:rows] {
		tbits[i] = math.Float32frombits(uint32(t))
	}
	return k.run(func(m *Module) error {
		plog, err := k.put(0, logits[:rows*vocab])
		if err != nil {
			return err
		}
		ptgt, err := k.put(1, tbits)
		if err != nil {
			return err
		}
		ploss, err := k.alloc(2, rows)
		if err != nil {
			return err
		}
		if err := m.launch("softmax_xent", Dim3{X: uint32(rows)}, Dim3{X: threads}, plog, ploss, ptgt, rows, vocab, gradScale, grad); err != nil {
			return err
		}
		if err := k.d.dtoh(losses[:rows], ploss); err != nil {
			return err
		}
		if grad {
			return k.d.dtoh(logits[:rows*vocab], plog)
		}
		return nil
	})
}

func (k *Kernels) LayerNorm(out, mean, rstd, x, w, b []float32, rows, cols int, eps float32) error {
	n := rows * cols
	if rows < 0 || cols <= 0 || len(x) < n || len(out) < n || len(mean) < rows || len(rstd) < rows || len(w) < cols || (b != nil && len(b) < cols) || n > math.MaxInt32 {
		return fmt.Errorf("cuda layernorm: sizes do not fit %d rows of %d", rows, cols)
	}
	if rows == 0 {
		return nil
	}
	return k.run(func(m *Module) error {
		px, err := k.put(0, x[:n])
		if err != nil {
			return err
		}
		pw, err := k.put(1, w[:cols])
		if err != nil {
			return err
		}
		pb := pw // not read when there is no bias
		if b != nil {
			if pb, err = k.put(2, b[:cols]); err != nil {
				return err
			}
		}
		pout, err := k.alloc(3, n)
		if err != nil {
			return err
		}
		pmean, err := k.alloc(4, rows)
		if err != nil {
			return err
		}
		prstd, err := k.alloc(5, rows)
		if err != nil {
			return err
		}
		if err := m.launch("layernorm_forward", Dim3{X: uint32(rows)}, Dim3{X: threads},
			pout, pmean, prstd, px, pw, pb, rows, cols, b != nil, eps); err != nil {
			return err
		}
		if err := k.d.dtoh(out[:n], pout); err != nil {
			return err
		}
		if err := k.d.dtoh(mean[:rows], pmean); err != nil {
			return err
		}
		return k.d.dtoh(rstd[:rows], prstd)
	})
}

func (k *Kernels) AdamW(params, grads, mom, vel []float32, p AdamWParams) error {
	n := len(params)
	if len(grads) != n || len(mom) != n || len(vel) != n || n > math.MaxInt32 {
		return fmt.Errorf("cuda adamw: %d grads, %d m, %d v for %d params", len(grads), len(mom), len(vel), n)
	}
	if p.Step < 1 {
		return fmt.Errorf("cuda adamw: step %d, want ≥ 1", p.Step)
	}
	if n == 0 {
		return nil
	}
	bc1 := float32(1 - math.Pow(float64(p.Beta1), float64(p.Step)))
	bc2 := float32(1 - math.Pow(float64(p.Beta2), float64(p.Step)))
	stepSize := p.LR / bc1
	invSqrtBC2 := float32(1 / math.Sqrt(float64(bc2)))
	return k.run(func(m *Module) error {
		var ptr [4]DevicePtr
		for i, s := range [][]float32{params, grads, mom, vel} {
			var err error
			if ptr[i], err = k.put(i, s); err != nil {
				return err
			}
		}
		if err := m.launch("adamw_update", blocks(n, threads), Dim3{X: threads},
			ptr[0], ptr[1], ptr[2], ptr[3], n, p.LR, p.Beta1, p.Beta2, p.Eps, p.WeightDecay,
			stepSize, invSqrtBC2, p.GradScale); err != nil {
			return err
		}
		if err := k.d.dtoh(params, ptr[0]); err != nil {
			return err
		}
		if err := k.d.dtoh(mom, ptr[2]); err != nil {
			return err
		}
		return k.d.dtoh(vel, ptr[3])
	})
}
