// Package benchfmt is the shape of one benchmark measurement in DESIGN.md's
// benchmark JSON, shared by the benchmark harnesses of the services.
package benchfmt

import "encoding/json"

// Result is one measurement, in the shape of DESIGN.md's benchmark JSON.
type Result struct {
	Name  string
	Unit  string
	Value float64
	// Partner names what Value is compared with; "" means no partner, and
	// the JSON then has none of partner, partner_value and ratio.
	Partner string
	// PartnerValue is nil when the partner could not run (Note says why).
	PartnerValue *float64
	// Ratio is ours over the partner's, oriented so higher is better (for
	// times and sizes, the partner's over ours); nil with PartnerValue.
	Ratio *float64
	Note  string
}

// MarshalJSON writes the DESIGN.md form: partner_value and ratio are null
// for a partner that could not run and absent when there is no partner.
func (r Result) MarshalJSON() ([]byte, error) {
	type withPartner struct {
		Name         string   `json:"name"`
		Unit         string   `json:"unit"`
		Value        float64  `json:"value"`
		Partner      string   `json:"partner"`
		PartnerValue *float64 `json:"partner_value"`
		Ratio        *float64 `json:"ratio"`
		Note         string   `json:"note,omitempty"`
	}
	type alone struct {
		Name  string  `json:"name"`
		Unit  string  `json:"unit"`
		Value float64 `json:"value"`
		Note  string  `json:"note,omitempty"`
	}
	if r.Partner == "" {
		return json.Marshal(alone{r.Name, r.Unit, r.Value, r.Note})
	}
	return json.Marshal(withPartner{r.Name, r.Unit, r.Value, r.Partner, r.PartnerValue, r.Ratio, r.Note})
}

// Compare fills the partner fields: higherBetter says which way Value
// points (MB/s: true; seconds, bytes: false).
func (r *Result) Compare(partner string, value float64, higherBetter bool) {
	r.Partner = partner
	r.PartnerValue = &value
	var ratio float64
	switch {
	case higherBetter && value > 0:
		ratio = r.Value / value
	case !higherBetter && r.Value > 0:
		ratio = value / r.Value
	default:
		return
	}
	r.Ratio = &ratio
}

// Missing records a partner that could not run.
func (r *Result) Missing(partner, why string) {
	r.Partner = partner
	r.PartnerValue = nil
	r.Ratio = nil
	r.AddNote(why)
}

func (r *Result) AddNote(s string) {
	if s == "" {
		return
	}
	if r.Note != "" {
		r.Note += "; "
	}
	r.Note += s
}
