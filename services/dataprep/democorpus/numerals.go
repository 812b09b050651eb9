package democorpus

import (
	"fmt"
	"strings"
)

var (
	capDigits = []string{"零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"}
	capUnits  = []string{"", "拾", "佰", "仟"}
	lowDigits = []string{"零", "一", "二", "三", "四", "五", "六", "七", "八", "九"}
	lowUnits  = []string{"", "十", "百", "千"}
)

// group writes a number below 10000 with the given digits and units,
// zeros collapsed the way Chinese numerals are written.
func group(n int, digits, units []string) string {
	var b strings.Builder
	zero := false
	for p := 3; p >= 0; p-- {
		d := n / pow10(p) % 10
		if d == 0 {
			if b.Len() > 0 {
				zero = true
			}
			continue
		}
		if zero {
			b.WriteString(digits[0])
			zero = false
		}
		b.WriteString(digits[d])
		b.WriteString(units[p])
	}
	return b.String()
}

func pow10(p int) int {
	n := 1
	for range p {
		n *= 10
	}
	return n
}

// chineseNumber writes 0 ≤ n < 10^12 with the given digit set.
func chineseNumber(n int, digits, units []string, wan, yi string) string {
	if n == 0 {
		return digits[0]
	}
	parts := []struct {
		v    int
		unit string
	}{{n / 100000000, yi}, {n / 10000 % 10000, wan}, {n % 10000, ""}}
	var b strings.Builder
	needZero := false
	for _, p := range parts {
		if p.v == 0 {
			if b.Len() > 0 {
				needZero = true
			}
			continue
		}
		if b.Len() > 0 && (needZero || p.v < 1000) {
			b.WriteString(digits[0])
		}
		needZero = false
		b.WriteString(group(p.v, digits, units))
		b.WriteString(p.unit)
	}
	return b.String()
}

// capitalYuan writes an amount in yuan the way contracts do:
// 人民币壹拾贰万叁仟元整.
func capitalYuan(n int) string {
	return chineseNumber(n, capDigits, capUnits, "万", "亿") + "元整"
}

// lowerNumber writes small counts for article numbers and durations:
// 一, 十二, 二十. A leading 一十 becomes 十.
func lowerNumber(n int) string {
	s := chineseNumber(n, lowDigits, lowUnits, "万", "亿")
	if n >= 10 && n < 20 {
		s = strings.TrimPrefix(s, "一")
	}
	return s
}

// figures writes 123456 as 123,456.00.
func figures(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + ".00"
}

// yuan writes 人民币壹拾贰万叁仟元整（¥123,000.00）.
func yuan(n int) string {
	return "人民币" + capitalYuan(n) + "（¥" + figures(n) + "）"
}

// yearDigits writes 2023 as 二〇二三, as judgments date themselves.
func yearDigits(y int) string {
	var b strings.Builder
	for _, c := range fmt.Sprint(y) {
		if c == '0' {
			b.WriteString("〇")
		} else {
			b.WriteString(lowDigits[c-'0'])
		}
	}
	return b.String()
}

// zhQty is lowerNumber for counted things: 2 is 两 (两个月, 两份).
func zhQty(n int) string {
	if n == 2 {
		return "两"
	}
	return lowerNumber(n)
}
