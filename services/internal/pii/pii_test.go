package pii

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// span is a match written as its type and the substring it covers.
type span struct {
	Type Type
	Text string
}

func spans(text string, ms []Match) []span {
	var out []span
	for _, m := range ms {
		out = append(out, span{m.Type, text[m.Start:m.End]})
	}
	return out
}

func TestFind(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		text string
		want []span
	}{
		// email
		"email zh":            {"联系邮箱：zhang.san@example.com。", []span{{Email, "zhang.san@example.com"}}},
		"email en":            {"Write to <j.doe+news@mail.corp.co.uk>, please.", []span{{Email, "j.doe+news@mail.corp.co.uk"}}},
		"email numeric local": {"QQ邮箱12345678@qq.com（工作日）", []span{{Email, "12345678@qq.com"}}},
		"email mobile local":  {"发送至13812345678@163.com即可", []span{{Email, "13812345678@163.com"}}},
		"email no tld":        {"user@localhost and a@b.c", nil},
		"email trailing dot":  {"Mail a.b@c-d.org.", []span{{Email, "a.b@c-d.org"}}},
		"email file name":     {"po/sr@latin.po po/en@quot.header x/a@b.com", nil},
		"email message id":    {"<20030528162613.GB8524@ns.snowman.net> <4F91988B.1080502@videolan.org> <87bn3ssqg0.fsf@r.org> dc1605ce-a47d-34c5-8851-d9569f9ea5d3@martin.st", nil},
		"email bare at":       {"@某某 说：@ 你好 a@ @b.com", nil},
		// cn_mobile
		"mobile bare":        {"电话：13812345678，", []span{{CNMobile, "13812345678"}}},
		"mobile spaced":      {"手机（138 1234 5678）", []span{{CNMobile, "138 1234 5678"}}},
		"mobile dashed":      {"call 186-0000-1111.", []span{{CNMobile, "186-0000-1111"}}},
		"mobile +86":         {"Tel: +86 13912345678; +86-139-1234-5678", []span{{CNMobile, "+86 13912345678"}, {CNMobile, "+86-139-1234-5678"}}},
		"mobile in long run": {"编号1381234567890123456号", nil},
		"mobile 12 digits":   {"138123456789", nil},
		"mobile bad prefix":  {"12812345678", nil},
		"mobile in word":     {"ID a13812345678 or 13812345678b", nil},
		"mobile dotted":      {"v13812345678.1 1.13812345678", nil},
		// cn_landline
		"landline dash":      {"电话：010-62345678。", []span{{CNLandline, "010-62345678"}}},
		"landline 4 digit":   {"（0755-2345678）", []span{{CNLandline, "0755-2345678"}}},
		"landline paren":     {"Tel (021)52345678, (0571) 87654321", []span{{CNLandline, "(021)52345678"}, {CNLandline, "(0571) 87654321"}}},
		"landline fullwidth": {"电话（0571）87654321转人工", []span{{CNLandline, "（0571）87654321"}}},
		"landline ext":       {"总机020-83456789-801。", []span{{CNLandline, "020-83456789-801"}}},
		"landline space":     {"0755 2345678", []span{{CNLandline, "0755 2345678"}}},
		"landline +86":       {"+86 10 62345678", []span{{CNLandline, "+86 10 62345678"}}},
		"landline short":     {"010-1234567 0755-0234567 01-23456789", nil},
		// cn_id
		"id":            {"身份证号：11010519491231002X，", []span{{CNID, "11010519491231002X"}}},
		"id lower x":    {"身份证号11010519491231002x。", []span{{CNID, "11010519491231002x"}}},
		"id digit":      {"公民身份号码440305199001011233", nil}, // wrong check digit
		"id good digit": {"公民身份号码440305199001011248", []span{{CNID, "440305199001011248"}}},
		"id bad date":   {"110105194902310027", nil},
		"id bad region": {"990105194912310024", nil},
		"id in longer":  {"账号1110105194912310021", nil},
		"id then X run": {"11010519491231002XY", nil},
		// bank_card
		"visa":            {"卡号：4111111111111111。", []span{{BankCard, "4111111111111111"}}},
		"visa spaced":     {"card 4111 1111 1111 1111, exp 12/30", []span{{BankCard, "4111 1111 1111 1111"}}},
		"unionpay dashed": {"账号6222-0212-3456-7890-128）", []span{{BankCard, "6222-0212-3456-7890-128"}}},
		"amex":            {"Amex 3782 822463 10005.", []span{{BankCard, "3782 822463 10005"}}},
		"mastercard 2":    {"MC:2221000000000009", []span{{BankCard, "2221000000000009"}}},
		"jcb":             {"JCB 3530111333300000", []span{{BankCard, "3530111333300000"}}},
		"luhn fail":       {"4111111111111112", nil},
		"bad issuer":      {"9111111111111111 1234567812345670", nil},
		"mixed seps":      {"4111 1111-1111 1111", nil},
		"card after year": {"2023年 4111 1111 1111 1111", []span{{BankCard, "4111 1111 1111 1111"}}},
		"card mid run":    {"6273 4825 8030 2153 0", nil},
		// passport
		"passport zh":      {"护照号码：E12345678，", []span{{Passport, "E12345678"}}},
		"passport en":      {"Passport No. 123456789 was issued", []span{{Passport, "123456789"}}},
		"passport generic": {"持护照（EA1234567）入境", []span{{Passport, "EA1234567"}}},
		"passport no ctx":  {"编号E12345678，", nil},
		"passport far ctx": {"passport was mentioned much earlier in this sentence: E12345678", nil},
		"passport short":   {"护照号E1234567", nil},
		"passport word":    {"passport AGREEMENT", nil},
		// ipv4
		"ip public":     {"服务器8.8.8.8。", []span{{IPv4, "8.8.8.8"}}},
		"ip en":         {"from 203.208.60.1, then", []span{{IPv4, "203.208.60.1"}}},
		"ip private":    {"10.0.0.1 192.168.1.1 172.16.0.1 127.0.0.1 169.254.1.1", nil},
		"ip reserved":   {"0.1.2.3 224.0.0.1 240.1.1.1 255.255.255.255 100.64.0.1", nil},
		"ip docs":       {"192.0.2.1 198.51.100.7 203.0.113.9 198.18.0.1", nil},
		"ip bad octet":  {"256.1.1.1 8.8.8.256 8.08.8.8", nil},
		"ip version":    {"1.2.3.4.5 v8.8.8.8 v 8.8.8.8 Version: 1.3.0.1 strftime.c,v 1.10.2.3 Rev. 2.1.0.4", nil},
		"ip end period": {"IP是1.1.1.1.", []span{{IPv4, "1.1.1.1"}}},
		// us_ssn
		"ssn":        {"SSN: 123-45-6789.", []span{{USSSN, "123-45-6789"}}},
		"ssn bad":    {"000-12-3456 666-12-3456 912-34-5678 123-00-4567 123-45-0000", nil},
		"ssn spaces": {"123 45 6789", nil},
		// us_phone
		"us paren":   {"Call (415) 555-2671 now", []span{{USPhone, "(415) 555-2671"}}},
		"us dash":    {"电话：415-555-2671。", []span{{USPhone, "415-555-2671"}}},
		"us +1":      {"+1 415-555-2671, +1 (212) 555-0100, +1-800-555-0199", []span{{USPhone, "+1 415-555-2671"}, {USPhone, "+1 (212) 555-0100"}, {USPhone, "+1-800-555-0199"}}},
		"us compact": {"(202)555-0123 +12025550123", []span{{USPhone, "(202)555-0123"}, {USPhone, "+12025550123"}}},
		"us 1-":      {"1-800-555-0199", []span{{USPhone, "1-800-555-0199"}}},
		"us dots":    {"415.555.2671", []span{{USPhone, "415.555.2671"}}},
		"us bad N":   {"(123) 555-2671 415-155-2671", nil},
		"us in long": {"415-555-2671-2", nil},
		// overlap and mixed
		"several": {"甲方：张三，身份证11010519491231002X，手机13812345678，邮箱zs@qq.com。",
			[]span{{CNID, "11010519491231002X"}, {CNMobile, "13812345678"}, {Email, "zs@qq.com"}}},
		"legal numbers": {"第一百二十三条 根据2023年1月1日（20230101）第12号令，罚款100000元，GB/T 7714-2015，v2.0.1", nil},
		"fullwidth":     {"电话：１３８１２３４５６７８", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := spans(tc.text, s.Find(tc.text))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Find(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestConfigTypes(t *testing.T) {
	text := "13812345678 a@b.com 8.8.8.8"
	s, err := New(Config{Types: []Type{Email, IPv4}})
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{Email, "a@b.com"}, {IPv4, "8.8.8.8"}}
	if diff := cmp.Diff(want, spans(text, s.Find(text))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := New(Config{Types: []Type{"ssn"}}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("New with unknown type: err = %v, want ErrUnknownType", err)
	}
	if got := len(Types()); got != 9 {
		t.Errorf("len(Types()) = %d, want 9", got)
	}
}

func TestScrub(t *testing.T) {
	s, _ := New(Config{})
	text := "身份证11010519491231002X，电话（0571）87654321，mail a@b.cn"
	got, ms := s.Scrub(text)
	want := "身份证[CN_ID]，电话[CN_LANDLINE]，mail [EMAIL]"
	if got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
	wantSpans := []span{{CNID, "11010519491231002X"}, {CNLandline, "（0571）87654321"}, {Email, "a@b.cn"}}
	if diff := cmp.Diff(wantSpans, spans(text, ms)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if got, ms := s.Scrub("nothing here"); got != "nothing here" || ms != nil {
		t.Errorf("Scrub of clean text = %q, %v", got, ms)
	}
	if got := Placeholder(BankCard); got != "[BANK_CARD]" {
		t.Errorf("Placeholder(BankCard) = %q", got)
	}
}
