package accel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-plugin"
)

// ChecksumError says that a plugin binary is not the one pinned in
// HostConfig.Checksums. It matches ErrChecksumMismatch.
type ChecksumError struct {
	Backend  string
	Path     string
	Expected string // hex SHA-256, as pinned
	Actual   string // hex SHA-256 of the file found
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%v: accelerator plugin %q: binary %s has SHA-256 %s, pinned %s: refusing to start it",
		ErrChecksumMismatch, e.Backend, e.Path, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrChecksumMismatch) true.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksumMismatch }

// FileChecksum returns the hex SHA-256 of the file at path, the form
// HostConfig.Checksums takes.
func FileChecksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkPinned compares the binary at path with backend name's pinned
// checksum. It returns the pinned digest, nil when none is pinned.
func (h *Host) checkPinned(name, path string) ([]byte, error) {
	want, ok := h.cfg.Checksums[name]
	if !ok {
		return nil, nil
	}
	want = strings.ToLower(want)
	digest, _ := hex.DecodeString(want) // checked by Validate
	got, err := FileChecksum(path)
	if err != nil {
		return nil, fmt.Errorf("%w: accelerator plugin %q: cannot checksum its binary: %v", ErrChecksumMismatch, name, err)
	}
	if got != want {
		return nil, &ChecksumError{Backend: name, Path: path, Expected: want, Actual: got}
	}
	return digest, nil
}

// secureConfig checks the binary at path against backend name's pinned
// checksum, and returns the go-plugin SecureConfig that checks it again
// just before the start (nil when nothing is pinned).
func (h *Host) secureConfig(name, path string) (*plugin.SecureConfig, error) {
	digest, err := h.checkPinned(name, path)
	if err != nil || digest == nil {
		return nil, err
	}
	return &plugin.SecureConfig{Checksum: digest, Hash: sha256.New()}, nil
}
