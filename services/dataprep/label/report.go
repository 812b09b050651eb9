package label

import "fmt"

// Report summarises a label matrix with Snorkel's LF analysis. It is
// plain data and encodes to JSON.
type Report struct {
	Docs int `json:"docs"`
	// Coverage is the fraction of documents with at least one vote;
	// Overlap with at least two; Conflict with two votes that disagree.
	Coverage float64 `json:"coverage"`
	Overlap  float64 `json:"overlap"`
	Conflict float64 `json:"conflict"`
	// Functions has one entry per labeling function, in column order.
	Functions []FunctionReport `json:"functions"`
	// Model names the label model parameterisation when one was given.
	Model string `json:"model,omitempty"`
	// ClassBalance is the label model's class prior, by label.
	ClassBalance map[string]float64 `json:"class_balance,omitempty"`
}

// FunctionReport is one labeling function's line of the report.
type FunctionReport struct {
	Name string `json:"name"`
	// Polarity lists the labels the function emitted, in class order.
	Polarity []string `json:"polarity"`
	// Votes is the number of documents the function labeled.
	Votes int `json:"votes"`
	// Coverage: fraction of documents the function labels. Overlap:
	// fraction it labels that some other function also labels. Conflict:
	// fraction it labels that some other function labels differently.
	// All three are over all documents, as in Snorkel's LFAnalysis.
	Coverage float64 `json:"coverage"`
	Overlap  float64 `json:"overlap"`
	Conflict float64 `json:"conflict"`
	// EstimatedAccuracy is the label model's estimate of P(right | votes);
	// absent without a model.
	EstimatedAccuracy *float64 `json:"estimated_accuracy,omitempty"`
}

// Analyze reports coverage, overlap, conflict and polarity per function
// and overall. LabelModel.Report adds the model's estimates.
func Analyze(m *Matrix) Report {
	return analyze(m, nil)
}

// Report is Analyze(m) plus each function's estimated accuracy and the
// class balance from the model. m must have the model's columns.
func (lm *LabelModel) Report(m *Matrix) Report {
	return analyze(m, lm)
}

func analyze(m *Matrix, lm *LabelModel) Report {
	r := Report{Docs: m.Docs, Functions: make([]FunctionReport, m.Functions)}
	votes := make([]int, m.Functions)
	overlaps := make([]int, m.Functions)
	conflicts := make([]int, m.Functions)
	polarity := make([]map[int]bool, m.Functions)
	for j := range polarity {
		polarity[j] = map[int]bool{}
	}
	var covered, overlapped, conflicted int
	for i := range m.Docs {
		row := m.Row(i)
		n, first, disagree := 0, int8(Abstain), false
		for _, v := range row {
			if v < 0 {
				continue
			}
			if n == 0 {
				first = v
			} else if v != first {
				disagree = true
			}
			n++
		}
		if n > 0 {
			covered++
		}
		if n > 1 {
			overlapped++
		}
		if disagree {
			conflicted++
		}
		for j, v := range row {
			if v < 0 {
				continue
			}
			votes[j]++
			polarity[j][int(v)] = true
			if n > 1 {
				overlaps[j]++
			}
			if disagree {
				// The row holds two distinct labels, so some other
				// function's vote differs from v.
				conflicts[j]++
			}
		}
	}
	frac := func(x int) float64 {
		if m.Docs == 0 {
			return 0
		}
		return float64(x) / float64(m.Docs)
	}
	r.Coverage, r.Overlap, r.Conflict = frac(covered), frac(overlapped), frac(conflicted)
	var acc []float64
	if lm != nil && lm.n == m.Functions {
		acc = lm.Accuracies()
		r.Model = lm.model.String()
		r.ClassBalance = map[string]float64{}
		for y, p := range lm.ClassBalance() {
			r.ClassBalance[className(m.Labels, y)] = p
		}
	}
	for j := range m.Functions {
		f := FunctionReport{Name: fmt.Sprintf("lf%d", j), Votes: votes[j], Coverage: frac(votes[j]), Overlap: frac(overlaps[j]), Conflict: frac(conflicts[j]), Polarity: []string{}}
		if j < len(m.Names) {
			f.Name = m.Names[j]
		}
		for y := 0; y < maxClasses; y++ {
			if polarity[j][y] {
				f.Polarity = append(f.Polarity, className(m.Labels, y))
			}
		}
		if acc != nil {
			a := acc[j]
			f.EstimatedAccuracy = &a
		}
		r.Functions[j] = f
	}
	return r
}

func className(labels []string, y int) string {
	if y < len(labels) {
		return labels[y]
	}
	return fmt.Sprint(y)
}
