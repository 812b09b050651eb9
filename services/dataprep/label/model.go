package label

import (
	"errors"
	"fmt"
	"math"
)

// Model selects the parameterisation of the label model.
type Model int

const (
	// ModelConfusion is Dawid–Skene's model: per function, a full
	// distribution P(vote | true class) over {abstain, each label}. Abstains
	// are informative (a contract keyword that does not fire is evidence
	// against "contract"), which suits one-sided functions. The default.
	ModelConfusion Model = iota
	// ModelAccuracy gives each function one accuracy a: when it votes, it
	// is right with probability a and otherwise picks a wrong label
	// uniformly; abstains carry no information. Fewer parameters, in the
	// spirit of Snorkel's class-balanced LabelModel.
	ModelAccuracy
)

func (m Model) String() string {
	switch m {
	case ModelConfusion:
		return "confusion"
	case ModelAccuracy:
		return "accuracy"
	}
	return fmt.Sprintf("Model(%d)", int(m))
}

// ErrFit is returned, wrapped, when a label model cannot be fitted.
var ErrFit = errors.New("label: cannot fit label model")

// FitOptions configures FitLabelModel; the zero value is the default.
type FitOptions struct {
	// Model is the parameterisation (default ModelConfusion).
	Model Model
	// MaxIter bounds the EM iterations; 0 means 1000. Each iteration
	// visits the distinct rows of the matrix, not every document.
	MaxIter int
	// Tolerance stops EM once the mean log-likelihood per document
	// improves by less than it; 0 means 1e-7.
	Tolerance float64
	// Smoothing is the Dirichlet pseudo-count added to every estimated
	// count, keeping probabilities away from 0 and 1; 0 means 1, a
	// negative value means none.
	Smoothing float64
	// ClassBalance fixes the class prior instead of learning it; it is
	// normalised to sum to 1.
	ClassBalance []float64
}

type fitConfig struct {
	model        Model
	maxIter      int
	tol          float64
	smoothing    float64
	classBalance []float64
}

// LabelModel is a fitted generative label model.
type LabelModel struct {
	model Model
	k, n  int // classes, functions
	names []string

	logPrior []float64
	// logTheta[(j*k+y)*(k+1)+o]: log P(function j emits o | class y), o = 0
	// for abstain and label+1 otherwise (ModelConfusion).
	logTheta []float64
	// acc[j]: accuracy of function j when it votes (ModelAccuracy).
	acc []float64

	// Iterations and LogLikelihood (mean per document) describe the fit.
	Iterations    int
	LogLikelihood float64
	Converged     bool
}

// pattern is one distinct row of the matrix and how often it occurs.
type pattern struct {
	row    []int8
	weight float64
	voted  bool
}

func patterns(m *Matrix) []pattern {
	index := map[string]int{}
	var ps []pattern
	for i := range m.Docs {
		row := m.Row(i)
		key := string(rowBytes(row))
		if p, ok := index[key]; ok {
			ps[p].weight++
			continue
		}
		index[key] = len(ps)
		voted := false
		for _, v := range row {
			voted = voted || v >= 0
		}
		ps = append(ps, pattern{row: row, weight: 1, voted: voted})
	}
	return ps
}

func rowBytes(row []int8) []byte {
	b := make([]byte, len(row))
	for i, v := range row {
		b[i] = byte(v)
	}
	return b
}

// FitLabelModel learns, without ground truth, how far to trust each
// labeling function of m, by EM over the distinct rows of m. EM starts from
// the soft majority vote and stops after the configured number of
// iterations or once the likelihood stops improving.
func FitLabelModel(m *Matrix, cardinality int, opts FitOptions) (*LabelModel, error) {
	cfg := fitConfig{model: opts.Model, maxIter: opts.MaxIter, tol: opts.Tolerance, smoothing: opts.Smoothing}
	if opts.ClassBalance != nil {
		cfg.classBalance = append([]float64(nil), opts.ClassBalance...)
	}
	switch {
	case cfg.maxIter == 0:
		cfg.maxIter = 1000
	case cfg.maxIter < 0:
		return nil, fmt.Errorf("%w: max iterations %d below 0", ErrFit, cfg.maxIter)
	}
	if cfg.tol == 0 {
		cfg.tol = 1e-7
	}
	switch {
	case cfg.smoothing == 0:
		cfg.smoothing = 1
	case cfg.smoothing < 0:
		cfg.smoothing = 0
	}
	switch {
	case cardinality < 2 || cardinality > maxClasses:
		return nil, fmt.Errorf("%w: cardinality %d outside 2..%d", ErrFit, cardinality, maxClasses)
	case m.Docs == 0 || m.Functions == 0:
		return nil, fmt.Errorf("%w: empty matrix (%d documents × %d functions)", ErrFit, m.Docs, m.Functions)
	case math.IsNaN(cfg.smoothing) || math.IsNaN(cfg.tol):
		return nil, fmt.Errorf("%w: smoothing %v or tolerance %v is NaN", ErrFit, cfg.smoothing, cfg.tol)
	case cfg.model != ModelConfusion && cfg.model != ModelAccuracy:
		return nil, fmt.Errorf("%w: unknown model %v", ErrFit, cfg.model)
	}
	if cfg.classBalance != nil {
		if len(cfg.classBalance) != cardinality {
			return nil, fmt.Errorf("%w: class balance has %d entries for %d classes", ErrFit, len(cfg.classBalance), cardinality)
		}
		sum := 0.0
		for _, p := range cfg.classBalance {
			if !(p > 0) {
				return nil, fmt.Errorf("%w: class balance %v has an entry that is not positive", ErrFit, cfg.classBalance)
			}
			sum += p
		}
		for i := range cfg.classBalance {
			cfg.classBalance[i] /= sum
		}
	}
	for i, v := range m.Votes {
		if int(v) >= cardinality || v < Abstain {
			return nil, fmt.Errorf("%w: vote %d of function %d on document %d outside -1..%d", ErrFit, v, i%m.Functions, i/m.Functions, cardinality-1)
		}
	}

	k, n := cardinality, m.Functions
	lm := &LabelModel{model: cfg.model, k: k, n: n, names: m.Names, logPrior: make([]float64, k)}
	if cfg.model == ModelConfusion {
		lm.logTheta = make([]float64, n*k*(k+1))
	} else {
		lm.acc = make([]float64, n)
	}
	ps := patterns(m)
	total := float64(m.Docs)

	// Initial posteriors: the soft majority vote; rows without votes are
	// uniform.
	q := make([]float64, len(ps)*k)
	for p := range ps {
		qp := q[p*k : (p+1)*k]
		votes := 0.0
		for _, v := range ps[p].row {
			if v >= 0 {
				qp[v]++
				votes++
			}
		}
		for y := range qp {
			if votes == 0 {
				qp[y] = 1 / float64(k)
			} else {
				qp[y] /= votes
			}
		}
	}

	prev := math.Inf(-1)
	for it := 1; it <= cfg.maxIter; it++ {
		lm.mStep(ps, q, &cfg)
		ll := lm.eStep(ps, q) / total
		lm.Iterations, lm.LogLikelihood = it, ll
		if ll-prev < cfg.tol {
			lm.Converged = true
			break
		}
		prev = ll
	}
	return lm, nil
}

func (lm *LabelModel) mStep(ps []pattern, q []float64, cfg *fitConfig) {
	k, a := lm.k, cfg.smoothing
	// Class prior.
	if cfg.classBalance != nil {
		for y, p := range cfg.classBalance {
			lm.logPrior[y] = math.Log(p)
		}
	} else {
		mass := make([]float64, k)
		sum := 0.0
		for p := range ps {
			for y := range k {
				mass[y] += ps[p].weight * q[p*k+y]
			}
		}
		for y := range k {
			mass[y] += a
			sum += mass[y]
		}
		for y := range k {
			lm.logPrior[y] = math.Log(mass[y] / sum)
		}
	}
	switch lm.model {
	case ModelConfusion:
		o := k + 1
		counts := make([]float64, lm.n*k*o)
		for p := range ps {
			for j, v := range ps[p].row {
				for y := range k {
					counts[(j*k+y)*o+int(v)+1] += ps[p].weight * q[p*k+y]
				}
			}
		}
		for j := range lm.n {
			for y := range k {
				cell := counts[(j*k+y)*o : (j*k+y+1)*o]
				cell[y+1] += a // a prior that leans towards being right
				sum := 0.0
				for e := range cell {
					cell[e] += a
					sum += cell[e]
				}
				for e := range cell {
					lm.logTheta[(j*k+y)*o+e] = math.Log(cell[e] / sum)
				}
			}
		}
	case ModelAccuracy:
		for j := range lm.n {
			right, voted := 0.0, 0.0
			for p := range ps {
				v := ps[p].row[j]
				if v < 0 {
					continue
				}
				right += ps[p].weight * q[p*k+int(v)]
				voted += ps[p].weight
			}
			acc := (right + a) / (voted + 2*a)
			lm.acc[j] = min(max(acc, 1e-4), 1-1e-4)
		}
	}
}

// eStep fills q with posteriors and returns the total log-likelihood.
func (lm *LabelModel) eStep(ps []pattern, q []float64) float64 {
	k := lm.k
	ll := 0.0
	for p := range ps {
		ll += ps[p].weight * lm.posterior(ps[p].row, q[p*k:(p+1)*k])
	}
	return ll
}

// posterior writes P(class | row) into out and returns log P(row) (up to
// the abstain terms of ModelAccuracy, which do not depend on the class).
func (lm *LabelModel) posterior(row []int8, out []float64) float64 {
	k := lm.k
	copy(out, lm.logPrior)
	switch lm.model {
	case ModelConfusion:
		o := k + 1
		for j, v := range row {
			base := j * k * o
			for y := range k {
				out[y] += lm.logTheta[base+y*o+int(v)+1]
			}
		}
	case ModelAccuracy:
		for j, v := range row {
			if v < 0 {
				continue
			}
			right := math.Log(lm.acc[j])
			wrong := math.Log((1 - lm.acc[j]) / float64(k-1))
			for y := range k {
				if int(v) == y {
					out[y] += right
				} else {
					out[y] += wrong
				}
			}
		}
	}
	hi := math.Inf(-1)
	for _, x := range out {
		hi = max(hi, x)
	}
	sum := 0.0
	for y := range out {
		out[y] = math.Exp(out[y] - hi)
		sum += out[y]
	}
	for y := range out {
		out[y] /= sum
	}
	return hi + math.Log(sum)
}

// Predict returns each document's most probable label and the posterior
// over labels. Documents on which no function voted get Abstain (their
// probabilities are still filled in); exact ties go to the lowest label
// index. m must have the columns the model was fitted on; Predict panics
// otherwise.
func (lm *LabelModel) Predict(m *Matrix) (labels []int, probs [][]float64) {
	if m.Functions != lm.n {
		panic(fmt.Sprintf("label: Predict on %d functions, model fitted on %d", m.Functions, lm.n))
	}
	labels = make([]int, m.Docs)
	probs = make([][]float64, m.Docs)
	flat := make([]float64, m.Docs*lm.k)
	for i := range m.Docs {
		row := m.Row(i)
		p := flat[i*lm.k : (i+1)*lm.k : (i+1)*lm.k]
		lm.posterior(row, p)
		probs[i] = p
		labels[i] = Abstain
		for _, v := range row {
			if v >= 0 {
				labels[i] = argmax(p)
				break
			}
		}
	}
	return labels, probs
}

func argmax(p []float64) int {
	best := 0
	for y := range p {
		if p[y] > p[best] {
			best = y
		}
	}
	return best
}

// Accuracies returns, per function, the estimated probability that its
// vote is right when it votes.
func (lm *LabelModel) Accuracies() []float64 {
	out := make([]float64, lm.n)
	if lm.model == ModelAccuracy {
		copy(out, lm.acc)
		return out
	}
	k, o := lm.k, lm.k+1
	for j := range lm.n {
		right, voted := 0.0, 0.0
		for y := range k {
			prior := math.Exp(lm.logPrior[y])
			right += prior * math.Exp(lm.logTheta[(j*k+y)*o+y+1])
			voted += prior * (1 - math.Exp(lm.logTheta[(j*k+y)*o]))
		}
		out[j] = right / voted
	}
	return out
}

// ClassBalance returns the class prior the model learned or was given.
func (lm *LabelModel) ClassBalance() []float64 {
	out := make([]float64, lm.k)
	for y, l := range lm.logPrior {
		out[y] = math.Exp(l)
	}
	return out
}

// Cardinality returns the number of classes.
func (lm *LabelModel) Cardinality() int { return lm.k }
