package normalize

//go:generate go run ./internal/gen -in /usr/share/opencc/TSCharacters.ocd2 -out tables.go
