package tokbench

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// Encodings are the tiktoken encodings Run compares, in order.
var Encodings = []string{"cl100k_base", "r50k_base"}

const tiktokenPartner = "tiktoken-go v0.1.8 (offline loader)"

var setLoader sync.Once

// loadTiktokenGo returns tiktoken-go's encoder for name, from the rank files
// embedded in its offline loader.
func loadTiktokenGo(name string) (*tiktoken.Tiktoken, error) {
	setLoader.Do(func() { tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader()) })
	enc, err := tiktoken.GetEncoding(name)
	if err != nil {
		return nil, fmt.Errorf("tokbench: tiktoken-go encoding %s: %w", name, err)
	}
	return enc, nil
}

// rankFile returns the tiktoken rank file for name, the same bytes
// tiktoken-go's offline loader reads.
func rankFile(name string) ([]byte, error) {
	data, err := assets.Assets.ReadFile(name + ".tiktoken")
	if err != nil {
		return nil, fmt.Errorf("tokbench: rank file %s: %w", name, err)
	}
	return data, nil
}

// oneCore runs f with GOMAXPROCS 1 and returns how long it took.
func oneCore(f func()) time.Duration {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	runtime.GC()
	start := time.Now()
	f()
	return time.Since(start)
}

func timed(f func()) time.Duration {
	runtime.GC()
	start := time.Now()
	f()
	return time.Since(start)
}

func mbps(bytes int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// encodeResults measures ours and tiktoken-go on texts for one encoding:
// one core, then all cores.
func (o *Options) encodeResults(name string, texts []string) ([]Result, error) {
	n := totalBytes(texts)
	cores := runtime.GOMAXPROCS(0)
	single := Result{Name: fmt.Sprintf("encode/%s/threads=1", name), Unit: "MB/s"}
	batch := Result{Name: fmt.Sprintf("encode-batch/%s/threads=%d", name, cores), Unit: "MB/s"}

	data, err := rankFile(name)
	if err != nil {
		return nil, err
	}
	ours, err := loadOurs(name, data)
	if err != nil {
		return nil, err
	}
	o.logf("encode %s: ours, 1 core, %.1f MB", name, float64(n)/1e6)
	ourTokens := 0
	d := oneCore(func() {
		for _, s := range texts {
			ourTokens += len(ours.Encode(s))
		}
	})
	single.Value = mbps(n, d)
	single.Note = "one pass each; ours starts with an empty merge cache"
	o.logf("encode %s: ours, %d cores", name, cores)
	batch.Value = mbps(n, timed(func() { ours.EncodeBatch(texts) }))
	batch.Note = fmt.Sprintf("ours: EncodeBatch, merge cache warm from the 1-core pass; partner: EncodeOrdinary on %d goroutines", cores)

	tk, err := loadTiktokenGo(name)
	if err != nil {
		single.Missing(tiktokenPartner, err.Error())
		batch.Missing(tiktokenPartner, err.Error())
		return []Result{single, batch}, nil
	}
	o.logf("encode %s: tiktoken-go, 1 core", name)
	theirTokens := 0
	d = oneCore(func() {
		for _, s := range texts {
			theirTokens += len(tk.EncodeOrdinary(s))
		}
	})
	single.Compare(tiktokenPartner, mbps(n, d), true)
	if ourTokens != theirTokens {
		single.AddNote(fmt.Sprintf("token counts differ: ours %d, tiktoken-go %d", ourTokens, theirTokens))
	}
	o.logf("encode %s: tiktoken-go, %d goroutines", name, cores)
	d = timed(func() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range cores {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(texts) {
						return
					}
					tk.EncodeOrdinary(texts[i])
				}
			})
		}
		wg.Wait()
	})
	batch.Compare(tiktokenPartner, mbps(n, d), true)
	return []Result{single, batch}, nil
}
