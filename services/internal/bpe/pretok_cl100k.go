package bpe

// Cl100kPattern is cl100k_base's pre-tokenizer regular expression, as
// tiktoken and HuggingFace's converted tokenizer.json files spell it.
// nextCl100k cuts text exactly as it does (without a regexp engine), and
// MarshalJSON writes it for tokenizers loaded with Cl100kBase.
const Cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// GPT2Pattern is GPT-2's (r50k_base's) pre-tokenizer regular expression;
// preTokenize with chunk 0 cuts text exactly as it does.
const GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// nextCl100k returns the end of the pre-token that starts at s[i] (i <
// len(s)) under Cl100kPattern. The alternatives are tried in order, as a
// backtracking engine does:
//
//  1. a contraction, any case: 's 't 're 've 'm 'll 'd;
//  2. one optional rune that is not CR, LF, letter or number, then letters;
//  3. one to three numbers;
//  4. an optional space, runes that are not space, letter or number, then
//     any CR and LF;
//  5. whitespace up to and including its last CR or LF;
//  6. whitespace not followed by a non-space: a run that ends the text, or
//     all of a run but its last rune;
//  7. a single whitespace rune (before a non-space).
func nextCl100k(s string, i int) int {
	c := s[i]
	if c == '\'' {
		if n := contractionFold(s, i); n > 0 {
			return i + n
		}
	}
	k, w := classAt(s, i, false)
	switch k {
	case clsLetter:
		return letterRun(s, i+w)
	case clsNumber:
		j := i + w
		for n := 1; n < 3 && j < len(s); n++ {
			k2, w2 := classAt(s, j, false)
			if k2 != clsNumber {
				break
			}
			j += w2
		}
		return j
	case clsOther:
		j := i + w
		if j < len(s) {
			if k2, w2 := classAt(s, j, false); k2 == clsLetter {
				return letterRun(s, j+w2)
			}
		}
		return otherRun(s, j)
	}
	// Whitespace. Other than CR and LF it may lead letters (2); a space
	// may lead punctuation (4).
	if c != '\r' && c != '\n' && i+w < len(s) {
		k2, w2 := classAt(s, i+w, false)
		if k2 == clsLetter {
			return letterRun(s, i+w+w2)
		}
		if c == ' ' && k2 == clsOther {
			return otherRun(s, i+w+w2)
		}
	}
	j, last, nl := i, i, -1
	for j < len(s) {
		b := s[j]
		if b < 0x80 {
			if asciiClass[b] != clsSpace {
				break
			}
			if b == '\r' || b == '\n' {
				nl = j + 1
			}
			last = j
			j++
			continue
		}
		k2, w2 := classAt(s, j, false)
		if k2 != clsSpace {
			break
		}
		last = j
		j += w2
	}
	switch {
	case nl >= 0: // 5
		return nl
	case j == len(s) || last == i: // 6 at the end of the text, or 7
		return j
	}
	return last // 6
}

// letterRun returns the end of the run of letters starting at s[j].
func letterRun(s string, j int) int {
	for j < len(s) {
		if b := s[j]; b < 0x80 {
			if asciiClass[b] != clsLetter {
				return j
			}
			j++
			continue
		}
		k, w := classAt(s, j, false)
		if k != clsLetter {
			return j
		}
		j += w
	}
	return j
}

// otherRun returns the end of [^\s\p{L}\p{N}]*[\r\n]* starting at s[j].
func otherRun(s string, j int) int {
	for j < len(s) {
		if b := s[j]; b < 0x80 {
			if asciiClass[b] != clsOther {
				break
			}
			j++
			continue
		}
		k, w := classAt(s, j, false)
		if k != clsOther {
			break
		}
		j += w
	}
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}

// contractionFold is contraction without regard to case ('S, 'LL, 'Re).
// Only ASCII letters fold to these: no other rune lowers to s, t, r, e, v,
// m, l or d under unicode.ToLower, which regexp2's (?i) uses.
func contractionFold(s string, i int) int {
	if i+1 >= len(s) {
		return 0
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2]|0x20 == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2]|0x20 == 'l' {
			return 3
		}
	}
	return 0
}
