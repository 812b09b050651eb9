package augment

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// LoadDictionary reads a synonym dictionary in one of two formats:
//
//   - a JSON object mapping each word to an array of synonyms (the only
//     way to write keys or synonyms that contain blanks);
//   - lines "word synonym1 synonym2 …" separated by blanks, with empty
//     lines and lines starting with '#' ignored.
//
// A word listed twice, a word without synonyms and invalid UTF-8 are
// errors that name the line (or the JSON problem).
func LoadDictionary(data []byte) (map[string][]string, error) {
	if trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var d map[string][]string
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: dictionary JSON: %w", ErrConfig, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("%w: dictionary JSON: trailing data after the object", ErrConfig)
		}
		if err := checkDictionary(d); err != nil {
			return nil, err
		}
		return d, nil
	}
	d := map[string][]string{}
	firstLine := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("%w: dictionary line %d: invalid UTF-8", ErrConfig, line)
		}
		fields := strings.Fields(text)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		word := fields[0]
		if len(fields) == 1 {
			return nil, fmt.Errorf("%w: dictionary line %d: %q has no synonyms", ErrConfig, line, word)
		}
		if first, dup := firstLine[word]; dup {
			return nil, fmt.Errorf("%w: dictionary line %d: %q already listed on line %d", ErrConfig, line, word, first)
		}
		firstLine[word] = line
		d[word] = fields[1:]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: dictionary: %w", ErrConfig, err)
	}
	return d, nil
}

// defaultDictionary is a small legal synonym list, one entry a line.
const defaultDictionary = `# Chinese contract language
甲方 出卖人 委托方
乙方 买受人 受托方
本合同 本协议
本协议 本合同
支付 给付 交付
给付 支付
履行 执行
违约金 罚金
赔偿 补偿
损失 损害
约定 商定
双方 各方
不可抗力 意外事件
终止 解除
解除 终止
书面 书面形式的
通知 告知
争议 纠纷
纠纷 争议
协商 磋商
立即 即时
应当 须
# Chinese judgment language
原告 起诉人
被告 被诉人
判令 判决
驳回 不予支持
# English
shall must
must shall
Agreement Contract
Contract Agreement
terminate end
pay remit
payment remittance
obligations duties
breach violation
dispute disagreement
notice notification
promptly immediately
`

// DefaultDictionary returns a fresh copy of the built-in legal synonym
// dictionary (Chinese contract and judgment terms and a few English
// ones).
func DefaultDictionary() map[string][]string {
	d, err := LoadDictionary([]byte(defaultDictionary))
	if err != nil {
		panic("augment: default dictionary: " + err.Error())
	}
	return d
}
