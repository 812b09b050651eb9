package dedup

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every error that Config.Validate returns.
var ErrInvalidConfig = errors.New("dedup: invalid config")

// Limits that Config.Validate enforces.
const (
	MaxShingle = 64
	MaxPerms   = 1024
)

// Config configures MinHash signatures and the LSH index. Zero values of
// Shingle, Perms, Bands and Rows take the defaults (5, 128, 16, 8); Threshold
// 0 means "no confirmation" — use DefaultConfig for the recommended 0.8.
type Config struct {
	// Shingle is the shingle length in characters (runes).
	Shingle int
	// Perms is the number of MinHash permutations (signature length).
	Perms int
	// Bands and Rows split the signature for LSH; Bands*Rows must equal Perms.
	Bands, Rows int
	// Seed draws the permutations; signatures are comparable only under
	// the same Seed.
	Seed uint64
	// Threshold is the Jaccard similarity at which a candidate pair is
	// confirmed as a duplicate; 0 joins every candidate pair unconfirmed.
	Threshold float64
}

// DefaultConfig returns 5-character shingles, 128 permutations as 16 bands
// of 8 rows, and confirmation at Jaccard 0.8.
func DefaultConfig() Config {
	return Config{Shingle: 5, Perms: 128, Bands: 16, Rows: 8, Threshold: 0.8}
}

func (c Config) withDefaults() Config {
	if c.Shingle == 0 {
		c.Shingle = 5
	}
	if c.Perms == 0 {
		c.Perms = 128
	}
	if c.Bands == 0 {
		c.Bands = 16
	}
	if c.Rows == 0 {
		c.Rows = 8
	}
	return c
}

// Validate reports the first problem with c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Shingle < 1 || c.Shingle > MaxShingle:
		return fmt.Errorf("%w: shingle %d outside 1..%d", ErrInvalidConfig, c.Shingle, MaxShingle)
	case c.Perms < 1 || c.Perms > MaxPerms:
		return fmt.Errorf("%w: perms %d outside 1..%d", ErrInvalidConfig, c.Perms, MaxPerms)
	case c.Bands < 1 || c.Rows < 1:
		return fmt.Errorf("%w: bands %d and rows %d must be positive", ErrInvalidConfig, c.Bands, c.Rows)
	case c.Bands*c.Rows != c.Perms:
		return fmt.Errorf("%w: bands %d × rows %d = %d, want perms %d", ErrInvalidConfig, c.Bands, c.Rows, c.Bands*c.Rows, c.Perms)
	case !(c.Threshold >= 0 && c.Threshold <= 1): // also rejects NaN
		return fmt.Errorf("%w: threshold %v outside 0..1", ErrInvalidConfig, c.Threshold)
	}
	return nil
}
