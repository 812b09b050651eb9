package pii

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Fake returns a random valid instance of t in one of the formats a document
// would carry it in (for example "138 1234 5678", "+86-138-1234-5678",
// "（0571）87654321", "4111-1111-1111-1111", "+1 (415) 555-0134"); the
// whole returned string is what Find reports as the match. Fake panics on
// an unknown type.
//
// A passport number is detected only after a context word (护照, passport)
// within 20 characters before it, so text that plants one must supply the
// word, as in "护照号码：" + Fake(Passport, r).
func Fake(t Type, r *rand.Rand) string {
	switch t {
	case Email:
		return fakeEmail(r)
	case CNMobile:
		d := fakeMobileDigits(r)
		switch r.IntN(6) {
		case 0:
			return d[:3] + " " + d[3:7] + " " + d[7:]
		case 1:
			return d[:3] + "-" + d[3:7] + "-" + d[7:]
		case 2:
			return "+86 " + d
		case 3:
			return "+86-" + d[:3] + "-" + d[3:7] + "-" + d[7:]
		default:
			return d
		}
	case CNLandline:
		area, local := fakeLandline(r)
		switch r.IntN(7) {
		case 0:
			return "(" + area + ")" + local
		case 1:
			return "（" + area + "）" + local
		case 2:
			return "(" + area + ") " + local
		case 3:
			return area + "-" + local + "-" + strconv.Itoa(1+r.IntN(9999))
		case 4:
			return "+86 " + area[1:] + " " + local
		default:
			return area + "-" + local
		}
	case CNID:
		return fakeID(r, true)
	case BankCard:
		return formatCard(r, fakeCardDigits(r, true))
	case Passport:
		switch r.IntN(4) {
		case 0:
			return digits(r, 9)
		case 1:
			return string(rune('A'+r.IntN(26))) + string(rune('A'+r.IntN(26))) + digits(r, 7)
		default:
			return string("EGP"[r.IntN(3)]) + digits(r, 8)
		}
	case IPv4:
		for {
			o := [4]int{1 + r.IntN(223), r.IntN(256), r.IntN(256), 1 + r.IntN(254)}
			if publicIPv4(o) {
				return fmt.Sprintf("%d.%d.%d.%d", o[0], o[1], o[2], o[3])
			}
		}
	case USSSN:
		a := 1 + r.IntN(899)
		if a == 666 {
			a = 667
		}
		return fmt.Sprintf("%03d-%02d-%04d", a, 1+r.IntN(99), 1+r.IntN(9999))
	case USPhone:
		a, x, l := nxx(r), nxx(r), digits(r, 4)
		switch r.IntN(6) {
		case 0:
			return "(" + a + ") " + x + "-" + l
		case 1:
			return "+1 " + a + "-" + x + "-" + l
		case 2:
			return "+1 (" + a + ") " + x + "-" + l
		case 3:
			return "1-" + a + "-" + x + "-" + l
		case 4:
			return a + "." + x + "." + l
		default:
			return a + "-" + x + "-" + l
		}
	}
	panic(fmt.Sprintf("pii: Fake of unknown type %q", t))
}

// FakeInvalid returns a near miss for t that Find must not report as any
// type: a resident ID with a wrong check digit or impossible birth date, a
// card number failing Luhn, a private or malformed IPv4 address, an SSN with
// a never-issued part, a phone number whose area code starts with 0 or 1, a
// passport number of the wrong length, an address without a domain. It
// panics on an unknown type.
func FakeInvalid(t Type, r *rand.Rand) string {
	switch t {
	case Email:
		l := fakeLocal(r)
		switch r.IntN(4) {
		case 0:
			return l + "@localhost"
		case 1:
			return l + "@example.c"
		case 2:
			return l + " at example.com"
		default:
			return l + "@163.123"
		}
	case CNMobile:
		d := "1" + strconv.Itoa(r.IntN(3)) + digits(r, 9) // second digit 0–2
		if r.IntN(2) == 0 {
			return d[:3] + " " + d[3:7] + " " + d[7:]
		}
		return d
	case CNLandline:
		area, local := fakeLandline(r)
		switch r.IntN(3) {
		case 0:
			return area + "-" + string("01"[r.IntN(2)]) + local[1:] // local starts with 0 or 1
		case 1:
			return "0" + strconv.Itoa(1+r.IntN(9)) + "-" + local // 2-digit area
		default:
			return "010-" + local[:7] // 7 digits after a 3-digit area
		}
	case CNID:
		return fakeID(r, false)
	case BankCard:
		return formatCard(r, fakeCardDigits(r, false))
	case Passport:
		if r.IntN(2) == 0 {
			return string("EGP"[r.IntN(3)]) + digits(r, 7)
		}
		return string("EGP"[r.IntN(3)]) + digits(r, 9)
	case IPv4:
		switch r.IntN(8) {
		case 0:
			return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256))
		case 1:
			return fmt.Sprintf("192.168.%d.%d", r.IntN(256), r.IntN(256))
		case 2:
			return fmt.Sprintf("172.%d.%d.%d", 16+r.IntN(16), r.IntN(256), r.IntN(256))
		case 3:
			return fmt.Sprintf("127.0.0.%d", 1+r.IntN(254))
		case 4:
			return fmt.Sprintf("203.0.113.%d", r.IntN(256))
		case 5:
			return fmt.Sprintf("%d.%d.%d.%d", 224+r.IntN(32), r.IntN(256), r.IntN(256), r.IntN(256))
		case 6:
			return fmt.Sprintf("%d.%d.%d.%d", 256+r.IntN(700), r.IntN(256), r.IntN(256), r.IntN(256))
		default:
			return fmt.Sprintf("8.0%d.%d.%d", 1+r.IntN(9), r.IntN(256), r.IntN(256)) // leading zero
		}
	case USSSN:
		a, g, s := 1+r.IntN(665), 1+r.IntN(99), 1+r.IntN(9999)
		switch r.IntN(5) {
		case 0:
			a = 0
		case 1:
			a = 666
		case 2:
			a = 900 + r.IntN(100)
		case 3:
			g = 0
		default:
			s = 0
		}
		return fmt.Sprintf("%03d-%02d-%04d", a, g, s)
	case USPhone:
		a, x, l := nxx(r), nxx(r), digits(r, 4)
		bad := string("01"[r.IntN(2)]) + digits(r, 2)
		if r.IntN(2) == 0 {
			return "(" + bad + ") " + x + "-" + l
		}
		return a + "-" + bad + "-" + l
	}
	panic(fmt.Sprintf("pii: FakeInvalid of unknown type %q", t))
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func nxx(r *rand.Rand) string { return strconv.Itoa(2+r.IntN(8)) + digits(r, 2) }

var mobilePrefixes = []string{"130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
	"145", "147", "150", "151", "152", "153", "155", "156", "157", "158", "159", "166",
	"170", "171", "173", "175", "176", "177", "178", "180", "181", "182", "183", "184",
	"185", "186", "187", "188", "189", "191", "198", "199"}

func fakeMobileDigits(r *rand.Rand) string {
	return mobilePrefixes[r.IntN(len(mobilePrefixes))] + digits(r, 8)
}

var areaCodes = []string{"010", "020", "021", "022", "023", "024", "025", "027", "028", "029",
	"0311", "0351", "0371", "0431", "0451", "0512", "0531", "0571", "0591", "0731",
	"0755", "0757", "0769", "0871", "0898", "0931", "0991"}

func fakeLandline(r *rand.Rand) (area, local string) {
	area = areaCodes[r.IntN(len(areaCodes))]
	n := 8
	if len(area) == 4 && r.IntN(3) == 0 {
		n = 7
	}
	return area, strconv.Itoa(2+r.IntN(8)) + digits(r, n-1)
}

var regions = []string{"110101", "110105", "110108", "120101", "130102", "140105", "150102",
	"210102", "220102", "230102", "310101", "310104", "310115", "320102", "330106",
	"340102", "350102", "360102", "370102", "410102", "420102", "430102", "440106",
	"440305", "450102", "460105", "500101", "510107", "520102", "530102", "540102",
	"610102", "620102", "630102", "640104", "650102"}

// fakeID returns a resident ID; when valid is false, one with a wrong check
// character or an impossible birth date (and never a Gansu 62 prefix, which
// could pass as a UnionPay card).
func fakeID(r *rand.Rand, valid bool) string {
	region := regions[r.IntN(len(regions))]
	for !valid && strings.HasPrefix(region, "62") {
		region = regions[r.IntN(len(regions))]
	}
	y, m := 1940+r.IntN(70), 1+r.IntN(12)
	d := 1 + r.IntN(28)
	if !valid && r.IntN(3) == 0 {
		m, d = 13+r.IntN(7), 1+r.IntN(28) // impossible month
	}
	body := fmt.Sprintf("%s%04d%02d%02d%03d", region, y, m, d, r.IntN(1000))
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * idWeights[i]
	}
	c := idCheck[sum%11]
	if !valid && m <= 12 {
		c = idCheck[(sum+1+r.IntN(10))%11]
	}
	return body + string(c)
}

// fakeCardDigits returns a card number with a real issuer prefix and length,
// Luhn-valid when valid is true and failing Luhn otherwise.
func fakeCardDigits(r *rand.Rand, valid bool) string {
	var prefix string
	var n int
	switch r.IntN(6) {
	case 0, 1:
		prefix, n = "62"+digits(r, 4), 16+r.IntN(4)
		if !valid && n == 18 {
			n = 19 // an 18-digit 62… could be a Gansu resident ID
		}
	case 2:
		prefix, n = "4"+digits(r, 5), []int{13, 16, 16, 19}[r.IntN(4)]
	case 3:
		if r.IntN(2) == 0 {
			prefix = strconv.Itoa(51 + r.IntN(5))
		} else {
			prefix = strconv.Itoa(2221 + r.IntN(500))
		}
		n = 16
	case 4:
		prefix, n = []string{"34", "37"}[r.IntN(2)], 15
	default:
		prefix, n = strconv.Itoa(3528+r.IntN(62)), 16
	}
	body := prefix + digits(r, n-1-len(prefix))
	c := luhnDigit(body)
	if !valid {
		c = (c + 1 + r.IntN(9)) % 10
	}
	return body + strconv.Itoa(c)
}

// luhnDigit returns the check digit that makes body+digit pass the
// validator's Luhn check.
func luhnDigit(body string) int {
	for d := range 9 {
		if luhn(body + strconv.Itoa(d)) {
			return d
		}
	}
	return 9
}

func formatCard(r *rand.Rand, d string) string {
	f := r.IntN(3)
	if f == 0 {
		return d
	}
	sep := " -"[f-1 : f]
	if len(d) == 15 && (d[:2] == "34" || d[:2] == "37") {
		return d[:4] + sep + d[4:10] + sep + d[10:]
	}
	var b strings.Builder
	for i := 0; i < len(d); i += 4 {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(d[i:min(i+4, len(d))])
	}
	return b.String()
}

var (
	givenNames = []string{"zhang.san", "li.wei", "wang_fang", "liuyang", "chen.jing", "zhao.lei",
		"john.smith", "j.doe", "mary", "alice.wong", "bob_lee", "legal-dept", "hr"}
	domains = []string{"qq.com", "163.com", "126.com", "sina.com.cn", "gmail.com", "outlook.com",
		"example.org", "lawfirm.cn", "court.gov.cn", "mail.tsinghua.edu.cn", "corp.co.uk"}
)

func fakeLocal(r *rand.Rand) string {
	l := givenNames[r.IntN(len(givenNames))]
	switch r.IntN(4) {
	case 0:
		l += strconv.Itoa(r.IntN(2000))
	case 1:
		l += "+news"
	}
	return l
}

func fakeEmail(r *rand.Rand) string {
	if r.IntN(5) == 0 {
		return fakeMobileDigits(r)[:9+r.IntN(3)] + "@" + domains[r.IntN(2)] // QQ-style numeric
	}
	return fakeLocal(r) + "@" + domains[r.IntN(len(domains))]
}
