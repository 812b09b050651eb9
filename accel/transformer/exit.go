package transformer

import "math"

// tryExit runs the early-exit head after layer l on the last row of every
// sequence still running; a sequence whose top softmax probability reaches
// threshold takes those logits as its result, and its row moves behind
// the active rows (later layers only compute its K and V).
func (d *Decoder) tryExit(l int, threshold float32) {
	c := d.cfg
	D, V := c.NEmbd, c.VocabSize
	ex := d.m.p.exits[d.exitAt[l]]
	n := 0
	for i := range d.plan {
		if !d.exited[i] {
			d.candSeq[n] = int32(i)
			copy(d.last[n*D:(n+1)*D], d.x[int(d.lastRow[i])*D:])
			n++
		}
	}
	if n == 0 {
		return
	}
	normForward(d.last, d.mean, d.rstd, d.last[:n*D], ex.w, ex.b, n, D)
	clear(d.out[:n*V])
	d.matmul(true, d.out, d.last, d.m.p.wte, n, D, V)
	for j := range n {
		row := d.out[j*V : (j+1)*V]
		if topProb(row) < threshold {
			continue
		}
		i := int(d.candSeq[j])
		copy(d.logits[i*V:(i+1)*V], row)
		d.exited[i] = true
		d.res.ExitLayers[i] = l + 1
		d.active--
		d.swapRows(int(d.lastRow[i]), d.active)
	}
}

// topProb is the largest softmax probability of logits row.
func topProb(row []float32) float32 {
	mx := row[0]
	for _, v := range row {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v - mx))
	}
	return float32(1 / sum)
}
