package sampling

import (
	"strings"
	"unicode/utf8"
)

// StopCutter finds stop sequences in streamed text. It holds back the tail
// that could be the start of a stop sequence until the next piece decides
// it, and never splits a character it holds back. The zero value has no
// stop sequences and passes text through.
type StopCutter struct {
	stops   []string
	pending string
	hit     bool
}

// NewStopCutter returns a cutter for stops (empty strings are not stops).
func NewStopCutter(stops []string) *StopCutter {
	c := &StopCutter{}
	for _, s := range stops {
		if s != "" {
			c.stops = append(c.stops, s)
		}
	}
	return c
}

// Push adds text and returns what may be sent now; hit reports that a stop
// sequence was found, and the text before it is all that is left.
func (c *StopCutter) Push(text string) (out string, hit bool) {
	if len(c.stops) == 0 {
		return text, false
	}
	buf := c.pending + text
	first := -1
	for _, stop := range c.stops {
		if i := strings.Index(buf, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		c.pending, c.hit = "", true
		return buf[:first], true
	}
	hold := 0
	for _, stop := range c.stops {
		for k := min(len(stop)-1, len(buf)); k > hold; k-- {
			if strings.HasSuffix(buf, stop[:k]) {
				hold = k
				break
			}
		}
	}
	// Never split a character: hold back whole runes.
	for hold > 0 && hold < len(buf) && !utf8.RuneStart(buf[len(buf)-hold]) {
		hold++
	}
	c.pending = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

// Flush returns the held-back text at the end of the generation.
func (c *StopCutter) Flush() string {
	out := c.pending
	c.pending = ""
	return out
}

// Hit reports whether a stop sequence was found.
func (c *StopCutter) Hit() bool { return c.hit }
