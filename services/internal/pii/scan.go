package pii

// Byte classes that drive the single pass.
const (
	clsOther  uint8 = iota
	clsDigit        // 0-9
	clsLetter       // A-Z a-z
	clsAt           // '@'
	clsPlus         // '+'
	clsParen        // '('
	clsFull         // 0xEF: lead byte of U+FF08 '（'
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] = clsDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] = clsLetter
		class[c-'a'+'A'] = clsLetter
	}
	class['@'] = clsAt
	class['+'] = clsPlus
	class['('] = clsParen
	class[0xEF] = clsFull
}

func isDigit(c byte) bool { return c-'0' < 10 }
func isAlnum(c byte) bool { k := class[c]; return k == clsDigit || k == clsLetter }

// alnumEnd returns the end of the run of ASCII letters and digits at i.
func alnumEnd(t string, i int) int {
	for i < len(t) && isAlnum(t[i]) {
		i++
	}
	return i
}

// leftOK reports whether a number may start at s: not inside an alphanumeric
// run and not the continuation of a dotted or dashed number.
func leftOK(t string, s int) bool {
	if s == 0 {
		return true
	}
	p := t[s-1]
	if isAlnum(p) {
		return false
	}
	return !((p == '.' || p == '-') && s >= 2 && isDigit(t[s-2]))
}

// rightOK is leftOK's mirror for a match ending at e.
func rightOK(t string, e int) bool {
	if e >= len(t) {
		return true
	}
	c := t[e]
	if isAlnum(c) {
		return false
	}
	return !((c == '.' || c == '-') && e+1 < len(t) && isDigit(t[e+1]))
}

// add appends m to out, resolving overlap with the matches already there:
// the longer one stays. Matches arrive ordered by Start except emails, which
// grow leftwards from '@' and so may cover earlier ones.
func add(out []Match, m Match) []Match {
	for len(out) > 0 {
		last := out[len(out)-1]
		if last.End <= m.Start {
			break
		}
		if m.End-m.Start <= last.End-last.Start {
			return out
		}
		out = out[:len(out)-1]
	}
	return append(out, m)
}

func (s *Scanner) scan(t string, out []Match) []Match {
	n := len(t)
	for i := 0; i < n; {
		switch class[t[i]] {
		case clsOther:
			i++
		case clsLetter:
			j := alnumEnd(t, i)
			if j-i == 9 && s.on[kPassport] && passportAt(t, i, j) {
				out = add(out, Match{Passport, i, j})
			}
			i = j
		case clsDigit:
			if s.digits && leftOK(t, i) {
				if k, e, ok := s.number(t, i); ok {
					out = add(out, Match{allTypes[k], i, e})
					i = e
					continue
				}
				if j := alnumEnd(t, i); j-i == 9 && s.on[kPassport] && passportAt(t, i, j) {
					out = add(out, Match{Passport, i, j})
				}
			}
			i = alnumEnd(t, i)
		case clsAt:
			if s.on[kEmail] {
				if st, e, ok := emailAt(t, i); ok {
					out = add(out, Match{Email, st, e})
					i = e
					continue
				}
			}
			i++
		case clsPlus:
			if s.digits && (i == 0 || !isAlnum(t[i-1])) {
				if k, e, ok := s.intl(t, i); ok {
					out = add(out, Match{allTypes[k], i, e})
					i = e
					continue
				}
			}
			i++
		case clsParen:
			if s.digits {
				if k, e, ok := s.paren(t, i, i+1, false); ok {
					out = add(out, Match{allTypes[k], i, e})
					i = e
					continue
				}
			}
			i++
		case clsFull:
			if s.on[kCNLandline] && i+3 < n && t[i+1] == 0xBC && t[i+2] == 0x88 {
				if k, e, ok := s.paren(t, i, i+3, true); ok {
					out = add(out, Match{allTypes[k], i, e})
					i = e
					continue
				}
			}
			i++
		}
	}
	return out
}

const maxGroups = 6

// groups is a run of digit groups joined by single separators (' ', '-',
// '.'), as in "138 1234 5678" or "8.8.4.4".
type groups struct {
	n      int
	st, en [maxGroups]int
	sep    [maxGroups]byte // sep[g] joins group g and g+1
}

func parseGroups(t string, p int, g *groups) {
	g.n = 0
	for g.n < maxGroups {
		q := p
		for q < len(t) && isDigit(t[q]) {
			q++
		}
		g.st[g.n], g.en[g.n] = p, q
		g.n++
		if q+1 < len(t) && (t[q] == ' ' || t[q] == '-' || t[q] == '.') && isDigit(t[q+1]) {
			g.sep[g.n-1] = t[q]
			p = q + 1
			continue
		}
		return
	}
}

func (g *groups) len(i int) int { return g.en[i] - g.st[i] }

// sameSep reports whether the separators joining the first k groups are all
// the same byte, and that byte is one of seps.
func (g *groups) sameSep(k int, seps string) bool {
	if k < 2 {
		return true
	}
	s0 := g.sep[0]
	ok := false
	for i := 0; i < len(seps); i++ {
		ok = ok || seps[i] == s0
	}
	if !ok {
		return false
	}
	for i := 1; i < k-1; i++ {
		if g.sep[i] != s0 {
			return false
		}
	}
	return true
}

// digitsOf concatenates the digits of the first k groups into buf.
func (g *groups) digitsOf(t string, k int, buf []byte) []byte {
	buf = buf[:0]
	for i := 0; i < k; i++ {
		buf = append(buf, t[g.st[i]:g.en[i]]...)
	}
	return buf
}

// number tries the digit-run types at s, longest group prefix first, and
// returns the type and end of the first that validates with a clean right
// boundary.
func (s *Scanner) number(t string, st int) (kind, int, bool) {
	var g groups
	parseGroups(t, st, &g)
	if g.n == 1 {
		// Fast reject: most numbers in text are short.
		switch l := g.len(0); {
		case l == 9, l == 11, l >= 13 && l <= 19:
		case l == 17:
		default:
			return 0, 0, false
		}
	}
	var buf [24]byte
	for k := g.n; k >= 1; k-- {
		if kd, e, ok := s.groupsMatch(t, &g, k, buf[:]); ok {
			return kd, e, true
		}
	}
	return 0, 0, false
}

func (s *Scanner) groupsMatch(t string, g *groups, k int, buf []byte) (kind, int, bool) {
	e := g.en[k-1]
	if k >= 2 && k < g.n && g.sep[k-1] == g.sep[0] {
		// A grouped number is all of its groups: "6227 9443 9940 0012 4"
		// is not the card 6227 9443 9940 0012 followed by a 4.
		return 0, 0, false
	}
	if st := g.st[0]; k >= 2 && st >= 2 && t[st-1] == g.sep[0] && isDigit(t[st-2]) {
		return 0, 0, false // nor does one start inside such a run
	}
	switch k {
	case 1:
		d := t[g.st[0]:e]
		l := len(d)
		if l == 17 && s.on[kCNID] && e < len(t) && (t[e] == 'X' || t[e] == 'x') && rightOK(t, e+1) && validCNID(t[g.st[0]:e+1]) {
			return kCNID, e + 1, true
		}
		if !rightOK(t, e) {
			return 0, 0, false
		}
		switch {
		case l == 11 && s.on[kCNMobile] && validMobile(d):
			return kCNMobile, e, true
		case l == 18 && s.on[kCNID] && validCNID(d):
			return kCNID, e, true
		case l >= 13 && l <= 19 && s.on[kBankCard] && validCard(d):
			return kBankCard, e, true
		case l == 9 && s.on[kPassport] && passportAt(t, g.st[0], e):
			return kPassport, e, true
		}
	case 2:
		// Landline 010-12345678, 0755 1234567.
		if s.on[kCNLandline] && g.sameSep(2, "- ") && validLandline(t[g.st[0]:g.en[0]], t[g.st[1]:g.en[1]]) && rightOK(t, e) {
			return kCNLandline, e, true
		}
	case 3:
		if !rightOK(t, e) {
			return 0, 0, false
		}
		l0, l1, l2 := g.len(0), g.len(1), g.len(2)
		switch {
		case l0 == 3 && l1 == 4 && l2 == 4 && s.on[kCNMobile] && g.sameSep(3, " -") && validMobile(string(g.digitsOf(t, 3, buf))):
			return kCNMobile, e, true
		case l0 == 3 && l1 == 2 && l2 == 4 && s.on[kUSSSN] && g.sameSep(3, "-") && validSSN(t[g.st[0]:g.en[0]], t[g.st[1]:g.en[1]], t[g.st[2]:e]):
			return kUSSSN, e, true
		case l0 == 3 && l1 == 3 && l2 == 4 && s.on[kUSPhone] && g.sameSep(3, "-.") && validNANP(t[g.st[0]:g.en[0]], t[g.st[1]:g.en[1]]):
			return kUSPhone, e, true
		case l0 == 4 && l1 == 6 && l2 == 5 && s.on[kBankCard] && g.sameSep(3, " -") && validCard(string(g.digitsOf(t, 3, buf))):
			return kBankCard, e, true
		case l2 <= 5 && s.on[kCNLandline] && g.sameSep(3, "-") && validLandline(t[g.st[0]:g.en[0]], t[g.st[1]:g.en[1]]):
			return kCNLandline, e, true // with extension
		}
	case 4:
		if !rightOK(t, e) {
			return 0, 0, false
		}
		l0, l1, l2, l3 := g.len(0), g.len(1), g.len(2), g.len(3)
		switch {
		case l0 <= 3 && l1 <= 3 && l2 <= 3 && l3 <= 3 && s.on[kIPv4] && g.sameSep(4, ".") && validPublicIPv4(t[g.st[0]:e]) && !afterVersionWord(t, g.st[0]):
			return kIPv4, e, true
		case l0 == 4 && l1 == 4 && l2 == 4 && l3 <= 4 && s.on[kBankCard] && g.sameSep(4, " -") && validCard(string(g.digitsOf(t, 4, buf))):
			return kBankCard, e, true
		case l0 == 1 && t[g.st[0]] == '1' && l1 == 3 && l2 == 3 && l3 == 4 && s.on[kUSPhone] && g.sameSep(4, "- .") && validNANP(t[g.st[1]:g.en[1]], t[g.st[2]:g.en[2]]):
			return kUSPhone, e, true
		}
	case 5:
		if g.len(0) == 4 && g.len(1) == 4 && g.len(2) == 4 && g.len(3) == 4 && g.len(4) <= 3 &&
			s.on[kBankCard] && g.sameSep(5, " -") && rightOK(t, e) && validCard(string(g.digitsOf(t, 5, buf))) {
			return kBankCard, e, true
		}
	}
	return 0, 0, false
}

// intl tries "+86 …" (Chinese mobile or landline without its trunk 0) and
// "+1 …" (US phone) at t[i] == '+'.
func (s *Scanner) intl(t string, i int) (kind, int, bool) {
	n := len(t)
	var p int
	var cn bool
	switch {
	case i+3 < n && t[i+1] == '8' && t[i+2] == '6':
		p, cn = i+3, true
	case i+2 < n && t[i+1] == '1':
		p = i + 2
	default:
		return 0, 0, false
	}
	if t[p] == ' ' || t[p] == '-' {
		p++
	}
	if p >= n {
		return 0, 0, false
	}
	if !cn && t[p] == '(' {
		if !s.on[kUSPhone] {
			return 0, 0, false
		}
		return s.paren(t, i, p+1, false)
	}
	if !isDigit(t[p]) {
		return 0, 0, false
	}
	var g groups
	parseGroups(t, p, &g)
	var buf [24]byte
	for k := g.n; k >= 1; k-- {
		e := g.en[k-1]
		if !rightOK(t, e) {
			continue
		}
		if cn {
			switch {
			case k == 1 && g.len(0) == 11 && s.on[kCNMobile] && validMobile(t[p:e]):
				return kCNMobile, e, true
			case k == 3 && g.len(0) == 3 && g.len(1) == 4 && g.len(2) == 4 && s.on[kCNMobile] && g.sameSep(3, " -") && validMobile(string(g.digitsOf(t, 3, buf[:]))):
				return kCNMobile, e, true
			case k == 2 && s.on[kCNLandline] && g.sameSep(2, " -") && validLandline("0"+t[g.st[0]:g.en[0]], t[g.st[1]:e]):
				return kCNLandline, e, true
			}
			continue
		}
		switch {
		case k == 1 && g.len(0) == 10 && s.on[kUSPhone] && validNANP(t[p:p+3], t[p+3:p+6]):
			return kUSPhone, e, true
		case k == 3 && g.len(0) == 3 && g.len(1) == 3 && g.len(2) == 4 && s.on[kUSPhone] && g.sameSep(3, "-. ") && validNANP(t[g.st[0]:g.en[0]], t[g.st[1]:g.en[1]]):
			return kUSPhone, e, true
		}
	}
	return 0, 0, false
}

// paren tries "(NXX) NXX-XXXX" (US phone) and "(0XX)12345678" (Chinese
// landline) whose area digits start at p; start is where the match begins.
// full means the parentheses are the full-width （）, which only the
// Chinese landline form uses.
func (s *Scanner) paren(t string, start, p int, full bool) (kind, int, bool) {
	n := len(t)
	q := p
	for q < n && q-p < 5 && isDigit(t[q]) {
		q++
	}
	area := t[p:q]
	if len(area) < 3 || len(area) > 4 {
		return 0, 0, false
	}
	switch {
	case !full && q < n && t[q] == ')':
		q++
	case full && q+2 < n && t[q] == 0xEF && t[q+1] == 0xBC && t[q+2] == 0x89:
		q += 3
	default:
		return 0, 0, false
	}
	if q < n && t[q] == ' ' {
		q++
	}
	if q >= n || !isDigit(t[q]) {
		return 0, 0, false
	}
	var g groups
	parseGroups(t, q, &g)
	if area[0] == '0' {
		if !s.on[kCNLandline] {
			return 0, 0, false
		}
		e := g.en[0]
		if !validLandline(area, t[q:e]) {
			return 0, 0, false
		}
		if g.n >= 2 && g.sep[0] == '-' && g.len(1) <= 5 && rightOK(t, g.en[1]) {
			return kCNLandline, g.en[1], true // extension
		}
		if rightOK(t, e) {
			return kCNLandline, e, true
		}
		return 0, 0, false
	}
	if full || len(area) != 3 || !s.on[kUSPhone] || g.n < 2 || g.len(0) != 3 || g.len(1) != 4 || (g.sep[0] != '-' && g.sep[0] != '.') {
		return 0, 0, false
	}
	if e := g.en[1]; validNANP(area, t[g.st[0]:g.en[0]]) && rightOK(t, e) {
		return kUSPhone, e, true
	}
	return 0, 0, false
}

// emailAt finds an address around the '@' at at: a local part of up to 64
// characters to the left, a dotted domain whose last label is 2+ letters to
// the right.
func emailAt(t string, at int) (int, int, bool) {
	s := at
	for s > 0 && at-s < 64 && isLocal(t[s-1]) {
		s--
	}
	if s > 0 && isLocal(t[s-1]) {
		return 0, 0, false // local part too long: not an address
	}
	for s < at && (t[s] == '.' || t[s] == '-' || t[s] == '+') {
		s++
	}
	if s == at || t[at-1] == '.' {
		return 0, 0, false
	}
	n := len(t)
	p, end, labels, last := at+1, 0, 0, 0
	for p < n && p-at < 254 {
		q := p
		for q < n && (isAlnum(t[q]) || t[q] == '-') {
			q++
		}
		if q == p || t[p] == '-' || t[q-1] == '-' {
			break
		}
		labels++
		last, end = p, q
		if q+1 < n && t[q] == '.' && isAlnum(t[q+1]) {
			p = q + 1
			continue
		}
		break
	}
	if labels < 2 || end-last < 2 {
		return 0, 0, false
	}
	for i := last; i < end; i++ {
		if class[t[i]] != clsLetter {
			return 0, 0, false
		}
	}
	if s > 0 && t[s-1] == '/' || fileSuffix(t[last:end]) || messageID(t[s:at]) {
		return 0, 0, false
	}
	return s, end, true
}

// fileExts are name suffixes that are not top-level domains, seen in
// file names like po/sr@latin.po and en@quot.header.
var fileExts = []string{"po", "pot", "header", "sed", "txt", "html", "htm", "xml", "json",
	"png", "jpg", "jpeg", "gif", "svg", "pdf", "js", "css", "java", "cpp", "hpp", "gz",
	"bz2", "xz", "zip", "tar", "exe", "dll", "ttf", "otf"}

func fileSuffix(tld string) bool {
	for _, e := range fileExts {
		if len(tld) == len(e) && asciiEqualFold(tld, e) {
			return true
		}
	}
	return false
}

// messageID reports whether an address's local part looks like a mail
// Message-ID rather than a mailbox: a run of 12 or more digits (a
// timestamp, as in 20030528162613.GB8524@…), a ".fsf" or ".camel" suffix
// (Gnus, Evolution), 8 hex digits, a dot and digits (Thunderbird,
// 4F91988B.1080502@…), a UUID, or 40 characters or more.
func messageID(local string) bool {
	run := 0
	for i := 0; i < len(local); i++ {
		if isDigit(local[i]) {
			run++
			if run >= 12 {
				return true
			}
		} else {
			run = 0
		}
	}
	n := len(local)
	if n >= 40 { // Gmail's CA…@mail.gmail.com and other long generated ids
		return true
	}
	if n == 36 && local[8] == '-' && local[13] == '-' && local[18] == '-' && local[23] == '-' {
		return true // a UUID
	}
	if n > 4 && asciiEqualFold(local[n-4:], ".fsf") || n > 6 && asciiEqualFold(local[n-6:], ".camel") {
		return true
	}
	if n >= 14 && local[8] == '.' {
		for i := 0; i < n; i++ {
			c := local[i]
			if i == 8 {
				continue
			}
			if !(isDigit(c) || i < 8 && (c|0x20) >= 'a' && (c|0x20) <= 'f') {
				return false
			}
		}
		return true
	}
	return false
}

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// passportAt reports whether the 9-character alphanumeric token t[i:j] is
// passport-shaped (E/G/P and 8 digits, or upper-case letters and digits with
// at least one digit) and follows a context word within 20 characters.
func passportAt(t string, i, j int) bool {
	digits := 0
	for k := i; k < j; k++ {
		c := t[k]
		switch {
		case isDigit(c):
			digits++
		case c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	if digits == 0 || !rightOK(t, j) {
		return false
	}
	return passportContext(t, i)
}

// passportContext looks for 护照 or "passport" (any case) in the 20
// characters before i.
func passportContext(t string, i int) bool {
	w, runes := i, 0
	for w > 0 && runes < 20 && i-w < 80 { // 80 bytes bound invalid UTF-8
		w--
		if t[w]&0xC0 != 0x80 {
			runes++
		}
	}
	win := t[w:i]
	for k := 0; k < len(win); k++ {
		switch win[k] {
		case 0xE6: // 护 is E6 8A A4, 照 is E7 85 A7
			if k+5 < len(win) && win[k+1] == 0x8A && win[k+2] == 0xA4 && win[k+3] == 0xE7 && win[k+4] == 0x85 && win[k+5] == 0xA7 {
				return true
			}
		case 'p', 'P':
			if k+8 <= len(win) && asciiEqualFold(win[k:k+8], "passport") {
				return true
			}
		}
	}
	return false
}

func asciiEqualFold(a, lower string) bool {
	for i := 0; i < len(lower); i++ {
		if a[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// versionWords precede dotted numbers that are versions, not addresses:
// "version 1.3.0.1", "strftime.c,v 1.10.2.3", "Rev. 2.1.0.4".
var versionWords = []string{"v", "ver", "version", "versions", "rev", "revision", "release", "build"}

// afterVersionWord reports whether the word before i (skipping blanks and a
// '.' or ':') is a version word.
func afterVersionWord(t string, i int) bool {
	for i > 0 && (t[i-1] == ' ' || t[i-1] == '\t' || t[i-1] == ':' || t[i-1] == '.') {
		i--
	}
	j := i
	for j > 0 && i-j < 9 && class[t[j-1]] == clsLetter {
		j--
	}
	w := t[j:i]
	if j > 0 && class[t[j-1]] == clsLetter {
		return false
	}
	for _, v := range versionWords {
		if len(w) == len(v) && asciiEqualFold(w, v) {
			return true
		}
	}
	return false
}
