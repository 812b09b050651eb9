package label

// defaultConfigJSON is the default configuration. Functions marked noisy
// in their names fire on other document types too, on purpose: they give
// the label model something to learn.
const defaultConfigJSON = `{
  "labels": ["contract", "judgment", "statute", "regulation", "other"],
  "functions": [
    {"name": "contract_parties_zh", "label": "contract", "kind": "keywords", "all": ["甲方", "乙方"]},
    {"name": "contract_title", "label": "contract", "kind": "title_keywords", "any": ["合同", "协议", "Agreement", "Contract"]},
    {"name": "contract_recitals_en", "label": "contract", "kind": "keywords", "any": ["WHEREAS", "IN WITNESS WHEREOF", "This Agreement", "the Parties"]},
    {"name": "contract_signature", "label": "contract", "kind": "regex", "pattern": "签订日期|签订地点|（盖章）|（签字）|Signed by|Signature:"},
    {"name": "contract_word_noisy", "label": "contract", "kind": "keywords", "any": ["合同", "contract"], "min_count": 3},

    {"name": "judgment_title", "label": "judgment", "kind": "title_keywords", "any": ["判决书", "裁定书", "JUDGMENT", "Judgment"]},
    {"name": "judgment_formula_zh", "label": "judgment", "kind": "keywords", "all": ["本院认为", "判决如下"]},
    {"name": "judgment_formula_en", "label": "judgment", "kind": "keywords", "any": ["The Court finds", "IT IS ORDERED", "IT IS HEREBY ORDERED"]},
    {"name": "judgment_case_number", "label": "judgment", "kind": "heuristic", "heuristic": "case_number"},
    {"name": "judgment_parties_noisy", "label": "judgment", "kind": "keywords", "all": ["原告", "被告"]},
    {"name": "judgment_court_noisy", "label": "judgment", "kind": "keywords", "any": ["法院", "Court"]},

    {"name": "statute_title", "label": "statute", "kind": "heuristic", "heuristic": "law_title"},
    {"name": "statute_self_reference", "label": "statute", "kind": "keywords", "any": ["本法"], "min_count": 2},
    {"name": "statute_enactment", "label": "statute", "kind": "regex", "pattern": "全国人民代表大会(常务委员会)?[^。\\n]{0,30}?(通过|修正|修订)"},
    {"name": "statute_articles_noisy", "label": "statute", "kind": "heuristic", "heuristic": "has_articles", "threshold": 5},

    {"name": "regulation_title", "label": "regulation", "kind": "regex", "field": "title", "pattern": "(条例|规定|办法|细则|Regulations?)(（[^）]*）)?$"},
    {"name": "regulation_self_reference", "label": "regulation", "kind": "keywords", "any": ["本条例", "本规定", "本办法", "本细则", "these Regulations"]},
    {"name": "regulation_word_noisy", "label": "regulation", "kind": "keywords", "any": ["规定"], "min_count": 5},

    {"name": "other_short", "label": "other", "kind": "heuristic", "heuristic": "short_doc", "threshold": 200},
    {"name": "other_license", "label": "other", "kind": "keywords", "ignore_case": true, "any": ["copyright", "license", "permission is hereby granted", "版权所有"], "min_count": 2}
  ]
}`

// DefaultConfig returns a fresh, validated copy of the default
// configuration: 20 labeling functions for Chinese and English contracts,
// judgments, statutes, regulations and other documents, five of them
// deliberately noisy (names ending in _noisy).
func DefaultConfig() *Config {
	c, err := ParseConfig([]byte(defaultConfigJSON))
	if err != nil {
		panic("label: default config: " + err.Error())
	}
	return c
}
