package quality

import (
	"errors"
	"fmt"
	"strings"
)

// Config holds the thresholds of the quality rules. A zero threshold turns
// its rule off; DefaultConfig holds the tuned defaults. Fractions are in
// [0, 1]; a rule fails when its measure is above a Max or below a Min.
type Config struct {
	// MinChars is the least number of non-space runes (default 50).
	MinChars int `json:"min_chars"`
	// MaxChars is the most number of non-space runes (default 0: no limit).
	MaxChars int `json:"max_chars"`
	// MinCJKOrLatinRatio is the least share of non-space runes that are CJK
	// ideographs, kana or Latin letters (default 0.5): it rejects symbol
	// and digit soup, and text in other scripts.
	MinCJKOrLatinRatio float64 `json:"min_cjk_or_latin_ratio"`
	// MaxSymbolRatio is the most '#' and ellipses ("…", "...") per word,
	// a word being a Latin word or one CJK character (default 0.1, as
	// Gopher). The '#'s that open a Markdown heading do not count.
	MaxSymbolRatio float64 `json:"max_symbol_ratio"`
	// MaxBulletLineFrac is the most share of lines that start with a
	// bullet (•●○■□◆◇▪►➢✓, "- ", "* ") (default 0.9, as Gopher).
	MaxBulletLineFrac float64 `json:"max_bullet_line_frac"`
	// MaxEllipsisLineFrac is the most share of lines that end with an
	// ellipsis (default 0.3, as Gopher).
	MaxEllipsisLineFrac float64 `json:"max_ellipsis_line_frac"`
	// MaxDupLineFrac is the most share of non-blank lines that repeat an
	// earlier line (default 0.3, as Gopher).
	MaxDupLineFrac float64 `json:"max_dup_line_frac"`
	// MaxDupLineCharFrac is the most share of characters in lines that
	// repeat an earlier line (default 0.2, as Gopher).
	MaxDupLineCharFrac float64 `json:"max_dup_line_char_frac"`
	// MaxTopNGramCharFrac[n-2], n = 2, 3, 4, is the most share of word
	// characters covered by the occurrences of the single n-gram that
	// covers most (defaults 0.20, 0.18, 0.16, as Gopher). Words are Latin
	// words and single CJK characters, so for Chinese these are
	// character n-grams.
	MaxTopNGramCharFrac [3]float64 `json:"max_top_ngram_char_frac"`
	// MaxDupNGramCharFrac[n-5], n = 5..10, is the most share of word
	// characters covered by n-grams that occur more than once. Gopher's
	// values (0.15 down to 0.10) reject much of legal text, which repeats
	// set phrases; the defaults are 0.50, 0.45, 0.40, 0.35, 0.35, 0.30.
	MaxDupNGramCharFrac [6]float64 `json:"max_dup_ngram_char_frac"`
	// BoilerplatePatterns are substrings that mark a boilerplate line;
	// ASCII letters match without regard to case.
	BoilerplatePatterns []string `json:"boilerplate_patterns"`
	// MaxBoilerplateFrac is the most share of non-blank lines that hold a
	// boilerplate pattern (default 0.3).
	MaxBoilerplateFrac float64 `json:"max_boilerplate_frac"`
}

// DefaultBoilerplate is the default list of boilerplate markers: web page
// chrome and copyright footers, in Chinese and English.
var DefaultBoilerplate = []string{
	"版权所有", "all rights reserved", "点击", "cookie", "javascript",
	"免责声明", "返回顶部", "上一篇", "下一篇", "扫一扫", "关注我们", "分享到",
	"privacy policy", "terms of use", "log in", "sign up", "subscribe",
}

// DefaultConfig returns the defaults, tuned so that the Chinese laws and the
// English licence texts of the project's corpora mostly pass.
func DefaultConfig() Config {
	return Config{
		MinChars:            50,
		MinCJKOrLatinRatio:  0.5,
		MaxSymbolRatio:      0.1,
		MaxBulletLineFrac:   0.9,
		MaxEllipsisLineFrac: 0.3,
		MaxDupLineFrac:      0.5,
		MaxDupLineCharFrac:  0.5,
		MaxTopNGramCharFrac: [3]float64{0.20, 0.18, 0.16},
		MaxDupNGramCharFrac: [6]float64{0.90, 0.88, 0.86, 0.84, 0.82, 0.80},
		BoilerplatePatterns: append([]string(nil), DefaultBoilerplate...),
		MaxBoilerplateFrac:  0.3,
	}
}

// Validate reports the first out-of-range setting.
func (c Config) Validate() error {
	if c.MinChars < 0 {
		return fmt.Errorf("quality: min_chars %d is negative", c.MinChars)
	}
	if c.MaxChars < 0 {
		return fmt.Errorf("quality: max_chars %d is negative", c.MaxChars)
	}
	if c.MaxChars > 0 && c.MaxChars < c.MinChars {
		return fmt.Errorf("quality: max_chars %d is below min_chars %d", c.MaxChars, c.MinChars)
	}
	if c.MaxSymbolRatio < 0 {
		return fmt.Errorf("quality: max_symbol_ratio %g is negative", c.MaxSymbolRatio)
	}
	fracs := map[string]float64{
		"min_cjk_or_latin_ratio": c.MinCJKOrLatinRatio,
		"max_bullet_line_frac":   c.MaxBulletLineFrac,
		"max_ellipsis_line_frac": c.MaxEllipsisLineFrac,
		"max_dup_line_frac":      c.MaxDupLineFrac,
		"max_dup_line_char_frac": c.MaxDupLineCharFrac,
		"max_boilerplate_frac":   c.MaxBoilerplateFrac,
	}
	for i, v := range c.MaxTopNGramCharFrac {
		fracs[fmt.Sprintf("max_top_ngram_char_frac[%d] (%d-grams)", i, i+2)] = v
	}
	for i, v := range c.MaxDupNGramCharFrac {
		fracs[fmt.Sprintf("max_dup_ngram_char_frac[%d] (%d-grams)", i, i+5)] = v
	}
	for name, v := range fracs {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("quality: %s %g out of range [0, 1]", name, v)
		}
	}
	for i, p := range c.BoilerplatePatterns {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("quality: boilerplate_patterns[%d] is empty", i)
		}
	}
	if c.MaxBoilerplateFrac > 0 && len(c.BoilerplatePatterns) == 0 {
		return errors.New("quality: max_boilerplate_frac is set but boilerplate_patterns is empty")
	}
	return nil
}
