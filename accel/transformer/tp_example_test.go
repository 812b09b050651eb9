package transformer_test

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/llmesh/llmesh/accel/transformer"
)

// pairSum is an allreduce for two ranks in one process: each rank hands
// in its buffer; the second to arrive adds them and both get the sum.
type pairSum struct {
	mu    sync.Mutex
	first []float32
	done  chan struct{}
}

func (p *pairSum) allReduce(_ context.Context, _ uint64, data []float32) error {
	p.mu.Lock()
	if p.first == nil {
		p.first, p.done = data, make(chan struct{})
		done := p.done
		p.mu.Unlock()
		<-done
		return nil
	}
	for i, v := range p.first {
		data[i] += v
	}
	copy(p.first, data)
	p.first = nil
	close(p.done)
	p.mu.Unlock()
	return nil
}

// Two tensor-parallel ranks, each holding two of the four attention heads
// and half of every MLP, train on a batch in lockstep; their loss is the
// full model's, and gathering their parameters back gives the full model.
func ExampleNewTP() {
	cfg := transformer.Config{VocabSize: 50, NCtx: 16, NEmbd: 32, NLayer: 2, NHead: 4}
	full := transformer.New(cfg, transformer.PortableKernels(), 1)
	inputs, targets := make([]int32, 2*16), make([]int32, 2*16)
	for i := range inputs {
		inputs[i], targets[i] = int32(i%50), int32((i+1)%50)
	}
	want, err := full.Loss(inputs, targets, 2, 16)
	if err != nil {
		panic(err)
	}

	var group pairSum
	losses := make([]float64, 2)
	sizes := make([]int, 2)
	var gathered *transformer.Model
	var wg sync.WaitGroup
	for rank := range 2 {
		wg.Go(func() {
			ctx := context.Background()
			tp, err := transformer.NewTP(full, transformer.TPConfig{Rank: rank, World: 2, AllReduce: group.allReduce})
			if err != nil {
				panic(err)
			}
			sizes[rank] = tp.NumParams()
			if losses[rank], err = tp.ForwardBackward(ctx, inputs, targets, 2, 16); err != nil {
				panic(err)
			}
			m, _, err := tp.GatherModel(ctx, nil)
			if err != nil {
				panic(err)
			}
			if rank == 0 {
				gathered = m
			}
		})
	}
	wg.Wait()
	fmt.Printf("parameters: %d in the full model, %d on each rank\n", full.NumParams(), sizes[0])
	fmt.Println("same loss on both ranks:", losses[0] == losses[1])
	fmt.Println("loss matches the full model:", math.Abs(losses[0]-want) < 1e-5)
	same := true
	for i, v := range gathered.ParamData() {
		same = same && v == full.ParamData()[i]
	}
	fmt.Println("gathered parameters equal the full model's:", same)
	// Output:
	// parameters: 27584 in the full model, 15072 on each rank
	// same loss on both ranks: true
	// loss matches the full model: true
	// gathered parameters equal the full model's: true
}
