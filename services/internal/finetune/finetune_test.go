package finetune

import (
	"math"
	"slices"
	"testing"
)

func TestSchedule(t *testing.T) {
	s := Schedule{LR: 1e-2, MinLR: 1e-3, Warmup: 10, Steps: 110}
	for step, want := range map[int]float64{0: 1e-3, 4: 5e-3, 9: 1e-2, 10: 1e-2, 60: 5.5e-3, 110: 1e-3, 500: 1e-3} {
		if got := float64(s.At(step)); math.Abs(got-want) > 1e-8 {
			t.Errorf("step %d: lr %g, want %g", step, got, want)
		}
	}
	for step := 10; step < 110; step++ {
		if s.At(step+1) > s.At(step) {
			t.Fatalf("lr rises after the warmup at step %d", step)
		}
	}
}

func TestData(t *testing.T) {
	stream := make([]int32, 1000)
	for i := range stream {
		stream[i] = int32(i)
	}
	d := &Data{Train: stream, Val: stream[:301], Batch: 4, SeqLen: 16, Seed: 7}
	// Batches: windows of the stream, targets one ahead, the same for the
	// same (seed, step) and different across steps.
	in, tgt := d.TrainBatch(3)
	again, _ := d.TrainBatch(3)
	other, _ := d.TrainBatch(4)
	if !slices.Equal(in, again) || slices.Equal(in, other) {
		t.Errorf("batches are not a function of (seed, step)")
	}
	for i := range in {
		if tgt[i] != in[i]+1 || (i%16 != 0 && in[i] != in[i-1]+1) {
			t.Fatalf("position %d: input %d target %d is not a window of the stream", i, in[i], tgt[i])
		}
	}
	// Validation: at most batches x Batch windows, spread over the
	// shard, the last one short, each inside it.
	ws := d.ValWindows(2)
	rows := 0
	for _, w := range ws {
		rows += w.Rows
		for i := range w.In {
			if w.Tgt[i] != w.In[i]+1 || int(w.Tgt[i]) > 300 {
				t.Fatalf("window token %d -> %d", w.In[i], w.Tgt[i])
			}
		}
	}
	if len(ws) != 2 || rows != 8 {
		t.Errorf("%d windows of %d rows, want 2 of 8 rows", len(ws), rows)
	}
	if all := d.ValWindows(100); len(all) != 5 || all[4].Rows != 2 {
		t.Errorf("all windows: %d batches, the last of %d rows; want the 18 windows of 16 tokens in 5 batches", len(all), all[len(all)-1].Rows)
	}
}
