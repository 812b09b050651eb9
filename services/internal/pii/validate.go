package pii

// validMobile checks an 11-digit Chinese mobile number: 1, then 3–9, then
// nine digits.
func validMobile(d string) bool {
	return len(d) == 11 && d[0] == '1' && d[1] >= '3' && d[1] <= '9'
}

// validLandline checks a Chinese landline written with its trunk 0: area
// code 010 or 02X with an 8-digit local number, or a 4-digit 0[3-9]XX code
// with 7 or 8 digits; local numbers start with 2–9.
func validLandline(area, local string) bool {
	if len(area) < 3 || area[0] != '0' || len(local) < 7 || len(local) > 8 || local[0] < '2' {
		return false
	}
	switch len(area) {
	case 3:
		return (area[1] == '1' && area[2] == '0' || area[1] == '2') && len(local) == 8
	case 4:
		return area[1] >= '3'
	}
	return false
}

// validSSN checks AAA-GG-SSSS: area not 000, 666 or 9xx; group not 00;
// serial not 0000.
func validSSN(a, g, s string) bool {
	return a != "000" && a != "666" && a[0] != '9' && g != "00" && s != "0000"
}

// validNANP checks a North American area code and exchange: both start with
// 2–9.
func validNANP(area, exch string) bool {
	return area[0] >= '2' && exch[0] >= '2'
}

// provinces are the first two digits of a resident ID: the provinces,
// autonomous regions and municipalities, Taiwan (71), Hong Kong (81), Macao
// (82) and the residence permits for Taiwan residents (83).
var provinces = func() (p [100]bool) {
	for _, c := range []int{11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
		41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83} {
		p[c] = true
	}
	return
}()

var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idCheck = "10X98765432"

// validCNID checks an 18-character resident ID: a known province code,
// a real birth date between 1900 and 2099, and the ISO 7064 MOD 11-2 check
// character (X or x for 10).
func validCNID(d string) bool {
	if len(d) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		if !isDigit(d[i]) {
			return false
		}
		sum += int(d[i]-'0') * idWeights[i]
	}
	c := d[17]
	if c == 'x' {
		c = 'X'
	}
	if c != idCheck[sum%11] || !provinces[int(d[0]-'0')*10+int(d[1]-'0')] {
		return false
	}
	return validDate(atoi(d[6:10]), atoi(d[10:12]), atoi(d[12:14]))
}

func atoi(d string) int {
	n := 0
	for i := 0; i < len(d); i++ {
		n = n*10 + int(d[i]-'0')
	}
	return n
}

func validDate(y, m, d int) bool {
	if y < 1900 || y > 2099 || m < 1 || m > 12 || d < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
	if m == 2 && (y%4 == 0 && y%100 != 0 || y%400 == 0) {
		days = 29
	}
	return d <= days
}

// validCard checks a card number's issuer prefix and length (UnionPay 62:
// 16–19; Visa 4: 13, 16, 19; Mastercard 51–55 and 2221–2720: 16; Amex 34,
// 37: 15; JCB 3528–3589: 16–19) and its Luhn checksum.
func validCard(d string) bool {
	l := len(d)
	if l < 13 || l > 19 {
		return false
	}
	p2 := atoi(d[:2])
	p4 := atoi(d[:4])
	var ok bool
	switch {
	case d[0] == '4':
		ok = l == 13 || l == 16 || l == 19
	case p2 == 62:
		ok = l >= 16
	case p2 == 34 || p2 == 37:
		ok = l == 15
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		ok = l == 16
	case p4 >= 3528 && p4 <= 3589:
		ok = l >= 16
	}
	return ok && luhn(d)
}

func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// validPublicIPv4 parses a dotted quad (octets 0–255, no leading zeros) and
// reports whether it is a public unicast address.
func validPublicIPv4(s string) bool {
	var o [4]int
	k, start := 0, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			continue
		}
		part := s[start:i]
		if k == 4 || len(part) == 0 || len(part) > 3 || (len(part) > 1 && part[0] == '0') {
			return false
		}
		o[k] = atoi(part)
		if o[k] > 255 {
			return false
		}
		k++
		start = i + 1
	}
	return k == 4 && publicIPv4(o)
}

func publicIPv4(o [4]int) bool {
	a, b, c := o[0], o[1], o[2]
	switch {
	case a == 0, a == 10, a == 127, a >= 224: // this network, private, loopback, multicast, reserved, broadcast
		return false
	case a == 100 && b >= 64 && b <= 127: // shared address space (CGNAT)
		return false
	case a == 169 && b == 254: // link-local
		return false
	case a == 172 && b >= 16 && b <= 31: // private
		return false
	case a == 192 && b == 168: // private
		return false
	case a == 192 && b == 0 && (c == 0 || c == 2): // IETF protocol assignments, TEST-NET-1
		return false
	case a == 192 && b == 88 && c == 99: // 6to4 relay anycast (deprecated)
		return false
	case a == 198 && (b == 18 || b == 19): // benchmarking
		return false
	case a == 198 && b == 51 && c == 100, a == 203 && b == 0 && c == 113: // TEST-NET-2, TEST-NET-3
		return false
	}
	return true
}
