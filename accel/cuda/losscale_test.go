package cuda

import "testing"

func TestLossScaler(t *testing.T) {
	s := NewLossScaler()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Interval = 3
	if !s.Update(true) || !s.Update(true) || s.Scale != 1<<16 {
		t.Fatalf("two finite steps: scale %g", s.Scale)
	}
	if !s.Update(true) || s.Scale != 1<<17 {
		t.Fatalf("third finite step should grow the scale to 2^17, got %g", s.Scale)
	}
	if s.Update(false) {
		t.Fatal("an overflow step must be skipped")
	}
	if s.Scale != 1<<16 || s.Skipped() != 1 {
		t.Fatalf("after overflow: scale %g skipped %d", s.Scale, s.Skipped())
	}
	// An overflow resets the run of finite steps.
	s.Update(true)
	s.Update(true)
	s.Update(false)
	s.Update(true)
	s.Update(true)
	if s.Scale != 1<<15 {
		t.Fatalf("scale %g, want 2^15 (no growth before 3 finite steps in a row)", s.Scale)
	}
	if s.InvScale() != 1.0/(1<<15) {
		t.Fatalf("InvScale %g", s.InvScale())
	}
	for range 40 {
		s.Update(false)
	}
	if s.Scale != s.MinScale {
		t.Fatalf("scale %g backed off below the floor %g", s.Scale, s.MinScale)
	}
	for range 200 {
		s.Update(true)
	}
	if s.Scale != s.MaxScale {
		t.Fatalf("scale %g grew past the ceiling %g", s.Scale, s.MaxScale)
	}
}

func TestLossScalerValidate(t *testing.T) {
	for name, mod := range map[string]func(*LossScaler){
		"zero scale":    func(s *LossScaler) { s.Scale = 0 },
		"growth 1":      func(s *LossScaler) { s.Growth = 1 },
		"backoff 1":     func(s *LossScaler) { s.Backoff = 1 },
		"interval 0":    func(s *LossScaler) { s.Interval = 0 },
		"scale > max":   func(s *LossScaler) { s.Scale = 1 << 30 },
		"min above max": func(s *LossScaler) { s.MinScale = 1 << 25 },
	} {
		s := NewLossScaler()
		mod(s)
		if s.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
