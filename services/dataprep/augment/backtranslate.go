package augment

import (
	"context"
	"errors"
	"fmt"
	"unicode"
)

// Translator translates text between languages named by BCP 47 tags
// ("zh", "en"). The bus-backed implementation that calls a served model
// comes with the inference wiring.
type Translator interface {
	Translate(ctx context.Context, text, from, to string) (string, error)
}

// ErrSameLanguage is returned when the pivot language is the text's own.
var ErrSameLanguage = errors.New("augment: back-translation pivot is the source language")

// BackTranslate translates text into via and back into its own language,
// which it guesses from the script: "zh" when at least 30% of its letters
// are Han characters, "en" otherwise. Empty or blank text comes back as it
// is, without a call.
func BackTranslate(ctx context.Context, t Translator, text, via string) (string, error) {
	src := DetectLanguage(text)
	if src == "" {
		return text, nil
	}
	if via == src {
		return "", fmt.Errorf("%w: %q", ErrSameLanguage, via)
	}
	mid, err := t.Translate(ctx, text, src, via)
	if err != nil {
		return "", fmt.Errorf("augment: back-translate %s→%s: %w", src, via, err)
	}
	back, err := t.Translate(ctx, mid, via, src)
	if err != nil {
		return "", fmt.Errorf("augment: back-translate %s→%s: %w", via, src, err)
	}
	return back, nil
}

// DetectLanguage returns "zh" when at least 30% of the letters of text are
// Han characters, "en" when it has other letters, and "" when it has none.
func DetectLanguage(text string) string {
	han, letters := 0, 0
	for _, r := range text {
		if unicode.Is(unicode.Han, r) {
			han++
			letters++
		} else if unicode.IsLetter(r) {
			letters++
		}
	}
	switch {
	case letters == 0:
		return ""
	case float64(han) >= 0.3*float64(letters):
		return "zh"
	}
	return "en"
}
