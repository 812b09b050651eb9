package contracts

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// protoSum hashes every .proto file under proto/ (path and content), in a
// fixed order, together with the generator config.
func protoSum(t *testing.T) string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("proto", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".proto") {
			files = append(files, filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range append(files, "buf.yaml", "buf.gen.yaml") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f + "\x00"))
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestGeneratedUpToDate(t *testing.T) {
	got := protoSum(t)
	const sumFile = "gen/proto.sum"
	if os.Getenv("LLMESH_UPDATE_PROTOSUM") == "1" {
		if err := os.WriteFile(sumFile, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatalf("read %s: %v (run `go tool task proto`)", sumFile, err)
	}
	if strings.TrimSpace(string(want)) != got {
		t.Fatalf("contracts/gen is stale: the .proto sources changed since the code was generated; run `go tool task proto` and commit contracts/gen")
	}
}
