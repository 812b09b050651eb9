package simd

import "fmt"

// PackedB is the right-hand side of float32 products packed once into the
// panels the kernels read, for products that reuse it: a layer's weights
// multiplied by a new batch of rows every decode step. SgemmPacked then
// skips the packing, which for a few rows costs as much as the product.
// A PackedB belongs to the Kernels that packed it (their blocking), holds
// a copy (later changes to B are not seen) and is safe for concurrent use.
type PackedB struct {
	g     geometry
	k, n  int
	slabs [][]float32 // one per (column block, k slab), in the order runGemm visits them
}

// K and N are the packed matrix's sizes: op(B) is K×N.
func (p *PackedB) K() int { return p.k }
func (p *PackedB) N() int { return p.n }

// PackB packs op(B) (k×n; B is n×k with row stride ldb when transB) for
// SgemmPacked.
func (k *Kernels) PackB(transB bool, kk, n int, b []float32, ldb int) *PackedB {
	checkGemm("packb", false, transB, 1, n, kk, kk, kk, len(b), ldb, n, n)
	g := k.f32
	p := &PackedB{g: g, k: kk, n: n}
	j := &gemmJob{g: g, kind: kindF32, transB: transB, k: kk, n: n, b: b, ldb: ldb}
	for j.jc = 0; j.jc < n; j.jc += g.nc {
		j.nc = min(g.nc, n-j.jc)
		panels := ceilDiv(j.nc, g.nr)
		for j.pc = 0; j.pc < kk; j.pc += g.kc {
			j.kc = min(g.kc, kk-j.pc)
			slab := make([]float32, panels*j.kc*g.nr)
			for q := range panels {
				j.packB(slab[q*j.kc*g.nr:(q+1)*j.kc*g.nr], q*g.nr)
			}
			p.slabs = append(p.slabs, slab)
		}
	}
	return p
}

// SgemmPacked computes C = alpha·op(A)·B + beta·C like Sgemm, with B
// packed by PackB of these Kernels (m×k A, k×n B, m×n C).
func (k *Kernels) SgemmPacked(transA bool, m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	if g := k.f32; pb.g.nr != g.nr || pb.g.kc != g.kc || pb.g.nc != g.nc {
		panic(fmt.Sprintf("simd: SgemmPacked: B was packed for panels of %d×%d in slabs of %d columns, these kernels use %d×%d and %d",
			pb.g.kc, pb.g.nr, pb.g.nc, g.kc, g.nr, g.nc))
	}
	n, kk := pb.n, pb.k
	checkGemm("sgemm-packed", transA, false, m, n, kk, len(a), lda, kk*n, n, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || kk == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	j := gemmJobs.Get().(*gemmJob)
	*j = gemmJob{g: k.f32, kind: kindF32, transA: transA, m: m, n: n, k: kk,
		alpha: alpha, beta: beta, a: a, lda: lda, c: c, ldc: ldc, packed: pb}
	k.runGemm(j)
	*j = gemmJob{}
	gemmJobs.Put(j)
}
