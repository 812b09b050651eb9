// Package pii finds and scrubs personal data in text: email addresses,
// Chinese mobile and landline numbers, Chinese resident ID numbers, bank
// card numbers, passport numbers, public IPv4 addresses, US Social Security
// numbers and US phone numbers. The data-prep service scrubs corpora with
// it and the filter service checks model output with it.
//
// A Scanner is built once from a Config (New) and is then read-only and
// safe for concurrent use. Find returns Matches — a Type and byte offsets,
// never the value — and Scrub replaces each with Placeholder(type), such as
// "[EMAIL]" or "[CN_ID]", returning the offsets in the original text so
// that an audit column records what kind of value was removed and where.
//
// # How it scans
//
// One hand-written pass over the bytes serves every detector; there is no
// regexp. Bytes at or above 0x80 (most of a Chinese text) are skipped one
// at a time, except the lead byte of the full-width parenthesis （. An
// ASCII letter run is consumed whole (a digit inside "abc123" never starts
// a number). A digit run is read once as up to six digit groups joined by
// single ' ', '-' or '.' separators ("138 1234 5678", "8.8.4.4") and the
// detectors are tried on the longest prefix of groups first; the first
// that validates and ends on a boundary wins. '@', '+' and '(' are the
// other triggers. Boundaries: a match must not touch an ASCII letter or
// digit on either side, nor continue a dotted or dashed number ("1.2.3.4.5"
// and "415-555-2671-2" hold no match), and a space-grouped number is taken
// whole ("6227 9443 9940 0012 4" is not a 16-digit card followed by a 4).
// Chinese text has no spaces, so anything that is not an ASCII letter or
// digit, including all Chinese characters and punctuation such as ，。：（）,
// is a boundary. Where candidates overlap (a mobile number that is the
// local part of "13812345678@163.com") the longer one wins.
//
// # Detectors
//
//   - email: local part of up to 64 of [A-Za-z0-9._%+-] left of '@', two or
//     more dotted labels right of it, the last all letters and at least two
//     long. Rejected as not mailboxes: a local part right after '/' or a
//     last label that is a file suffix (po/sr@latin.po, en@quot.header), and
//     Message-ID shapes (a 12+ digit run, .fsf/.camel endings, Thunderbird's
//     4F91988B.1080502, UUIDs, 40+ characters). Limits: no quoted local
//     parts, no internationalized domains, no "name at domain" obfuscation.
//   - cn_mobile: 11 digits 1[3-9]XXXXXXXXX, bare, as 3-4-4 with spaces or
//     dashes, or after +86 (optionally followed by a space or dash).
//   - cn_landline: area code 010 or 02X with an 8-digit local number, or
//     0[3-9]XX with 7 or 8 digits; the local number starts with 2–9. Written
//     010-62345678, 0755 2345678, (021)52345678, (0571) 87654321,
//     （0571）87654321, with an optional -extension of up to 5 digits, or
//     +86 10 62345678. Limits: a bare 01062345678 is not matched (too like
//     other numbers); area codes are checked by shape, not against a list.
//   - cn_id: 17 digits and a check character (X or x for 10) that satisfies
//     ISO 7064 MOD 11-2, a known province prefix (11–65, 71, 81–83) and a
//     real birth date in 1900–2099. Limits: the county code after the
//     province is not checked; the old 15-digit IDs are not detected.
//   - bank_card: 13–19 digits, bare, in groups of four separated by spaces
//     or dashes (Amex as 4-6-5), with a Luhn check and an issuer prefix of
//     the right length: UnionPay 62 (16–19), Visa 4 (13, 16, 19),
//     Mastercard 51–55 and 2221–2720 (16), Amex 34/37 (15), JCB 3528–3589
//     (16–19). Limits: other issuers are not detected; about one random
//     number in ten with such a prefix and length passes Luhn.
//   - passport: a 9-character token of upper-case letters and digits with
//     at least one digit — the Chinese E, G or P and 8 digits, or generic
//     ones such as a US 9-digit number — only when 护照 or "passport" (any
//     case) appears in the 20 characters before it. Limits: other lengths,
//     lower-case numbers, and passports mentioned far from the word.
//   - ipv4: a dotted quad, octets 0–255 without leading zeros, that is a
//     public unicast address: not 0/8, 10/8, 100.64/10, 127/8,
//     169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24,
//     192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24 or 224/3, and not
//     right after a version word (v, ver, version, rev, revision, release,
//     build: "strftime.c,v 1.10.2.3"). Limits: a four-part version number
//     without such a word is taken for an address; no CIDR suffixes.
//   - us_ssn: AAA-GG-SSSS with dashes, not area 000, 666 or 9xx, group 00 or
//     serial 0000. Limits: SSNs written without dashes are not detected.
//   - us_phone: (NXX) NXX-XXXX, (NXX)NXX-XXXX, NXX-NXX-XXXX, NXX.NXX.XXXX,
//     1-NXX-NXX-XXXX and +1 forms (+1 NXX-NXX-XXXX, +1 (NXX) NXX-XXXX,
//     +1-NXX-NXX-XXXX, +1NXXNXXXXXX), where N is 2–9. Limits: ten bare
//     digits and space-separated forms are not detected; N11 service codes
//     are not excluded.
//
// # Input
//
// Text need not be valid UTF-8: the scanner works on bytes, only ever looks
// at ASCII and three-byte sequences it checks in full, and never panics
// (FuzzScrub). Full-width digits (０-９) are not detected; normalize them
// to ASCII first (the data-prep width folding does) if they matter.
//
// # Test data
//
// Fake returns a random valid instance of a type in a realistic format and
// FakeInvalid a near miss that must not be detected; both take a
// math/rand/v2 *rand.Rand, so a seeded generator reproduces a corpus. A
// planted passport number needs a context word before it.
package pii
