package dedup

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Policy chooses the survivor of a near-duplicate cluster.
type Policy int

const (
	// KeepFirst keeps the member with the lowest order (first seen).
	KeepFirst Policy = iota
	// KeepNewest keeps the member with the latest date (amended laws
	// carry the version date in the title; see DateOf). Members without a
	// date lose to dated ones; ties go to the lowest order.
	KeepNewest
)

// String names the policy as configs spell it.
func (p Policy) String() string {
	switch p {
	case KeepFirst:
		return "first"
	case KeepNewest:
		return "newest"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads "first" or "newest".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "first", "":
		return KeepFirst, nil
	case "newest":
		return KeepNewest, nil
	}
	return 0, fmt.Errorf("dedup: unknown keep policy %q (want first or newest)", s)
}

// Keep decides, for every id in clusters, whether it survives: the result
// maps the one survivor of each cluster to true and every other member to
// false. Ids in no cluster are absent and survive. info gives an id's date
// (an ISO date as DateOf returns, or "") and its order (position in the
// input; lower is earlier).
func Keep(clusters [][]int, policy Policy, info func(id int) (date string, order int)) map[int]bool {
	keep := make(map[int]bool)
	for _, c := range clusters {
		best, bestDate, bestOrder := 0, "", 0
		for i, id := range c {
			date, order := info(id)
			better := i == 0 || order < bestOrder
			if policy == KeepNewest && i > 0 {
				switch {
				case date > bestDate: // "" sorts before any date
					better = true
				case date < bestDate:
					better = false
				}
			}
			if better {
				best, bestDate, bestOrder = id, date, order
			}
			keep[id] = false
		}
		if len(c) > 0 {
			keep[best] = true
		}
	}
	return keep
}

// DateOf finds a version date in a title and returns it in ISO 8601 form,
// or "" when there is none. It reads 2018-10-26 (also with / or . as
// separator), 2018年10月26日, and a standalone 20181026; the
// less precise 2018年10月 gives "2018-10" and 2018年 gives "2018", which
// still sort correctly against full dates of other years. Full-width digits
// count. When a title holds several dates the latest wins. Years outside
// 1800..2199 and impossible days are ignored.
func DateOf(title string) string {
	// Fold full-width digits and separators so that one scan handles both.
	rs := make([]rune, 0, utf8.RuneCountInString(title))
	for _, r := range title {
		switch {
		case r >= '０' && r <= '９':
			r = r - '０' + '0'
		case r == '－':
			r = '-'
		case r == '／':
			r = '/'
		case r == '．':
			r = '.'
		}
		rs = append(rs, r)
	}
	best := ""
	for i := 0; i < len(rs); i++ {
		if !isDigit(rs[i]) || (i > 0 && isDigit(rs[i-1])) {
			continue
		}
		j := i
		for j < len(rs) && isDigit(rs[j]) {
			j++
		}
		if d := dateAt(rs, i, j); d > best {
			best = d
		}
		i = j - 1
	}
	return best
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// number reads the digit run starting at i (at most 4 digits) and returns its
// value and end, or ok false.
func number(rs []rune, i, maxDigits int) (v, end int, ok bool) {
	end = i
	for end < len(rs) && isDigit(rs[end]) {
		if end-i == maxDigits {
			return 0, 0, false
		}
		v = v*10 + int(rs[end]-'0')
		end++
	}
	return v, end, end > i
}

// dateAt parses a date whose first digit run is rs[i:j].
func dateAt(rs []rune, i, j int) string {
	switch j - i {
	case 8: // 20181026
		y, m, d := atoi(rs[i:i+4]), atoi(rs[i+4:i+6]), atoi(rs[i+6:j])
		return format(y, m, d)
	case 4:
	default:
		return ""
	}
	y := atoi(rs[i:j])
	if j >= len(rs) {
		return ""
	}
	sep := rs[j]
	switch sep {
	case '-', '/', '.':
		m, k, ok := number(rs, j+1, 2)
		if !ok || k >= len(rs) || rs[k] != sep {
			return ""
		}
		d, e, ok := number(rs, k+1, 2)
		if !ok || (e < len(rs) && isDigit(rs[e])) {
			return ""
		}
		return format(y, m, d)
	case '年':
		m, k, ok := number(rs, j+1, 2)
		if !ok || k >= len(rs) || rs[k] != '月' {
			return yearOnly(y)
		}
		d, e, ok := number(rs, k+1, 2)
		if !ok || e >= len(rs) || rs[e] != '日' {
			if m < 1 || m > 12 || y < 1800 || y > 2199 {
				return ""
			}
			return fmt.Sprintf("%04d-%02d", y, m)
		}
		return format(y, m, d)
	}
	return ""
}

func yearOnly(y int) string {
	if y < 1800 || y > 2199 {
		return ""
	}
	return fmt.Sprintf("%04d", y)
}

func atoi(rs []rune) int {
	v := 0
	for _, r := range rs {
		v = v*10 + int(r-'0')
	}
	return v
}

// format returns y-m-d in ISO form, or "" when it is not a real date.
func format(y, m, d int) string {
	if y < 1800 || y > 2199 || m < 1 || m > 12 || d < 1 || d > 31 {
		return ""
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d {
		return ""
	}
	return t.Format("2006-01-02")
}
