package accel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/llmesh/llmesh/accel"
	accelv1 "github.com/llmesh/llmesh/contracts/gen/llmesh/accel/v1"
)

// The four refusals issue 10 asks for: wrong handshake cookie, wrong
// protocol version (TestProtocolVersionMismatch), changed checksum, and a
// process that did not launch the plugin (AutoMTLS).

func TestWrongHandshakeCookie(t *testing.T) {
	for _, role := range []string{"badcookie", "badcookiekey"} {
		t.Run(role, func(t *testing.T) {
			h, _ := newHost(t, nil)
			err := within(t, 10*time.Second, "launching a plugin that expects another cookie", func() error {
				_, err := h.Launch(t.Context(), role)
				return err
			})
			if err == nil {
				t.Fatal("a plugin expecting another handshake cookie was launched")
			}
			for _, want := range []string{`"` + role + `"`, "launch failed", "This binary is a plugin"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Launch: error %q does not say %q", err, want)
				}
			}
		})
	}
}

// buildTPU returns a fresh copy, in its own t.TempDir(), of plugins/tpu
// built once per test binary (as acceltest.BuildPlugin builds it).
func buildTPU(t *testing.T) string {
	t.Helper()
	tpuBuild.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			tpuBuild.err = fmt.Errorf("building plugins/tpu needs the go command: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "llmesh-accel-test-")
		if err != nil {
			tpuBuild.err = err
			return
		}
		tpuBuild.dir = dir
		tpuBuild.bin = filepath.Join(dir, accel.BinaryPrefix+"tpu")
		cmd := exec.Command(goBin, "build", "-o", tpuBuild.bin, "github.com/llmesh/llmesh/plugins/tpu")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			tpuBuild.err = fmt.Errorf("go build plugins/tpu: %v\n%s", err, out)
		}
	})
	if tpuBuild.err != nil {
		t.Fatal(tpuBuild.err)
	}
	bin := filepath.Join(t.TempDir(), accel.BinaryPrefix+"tpu")
	replaceFile(t, tpuBuild.bin, bin)
	return bin
}

var tpuBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// replaceFile puts a copy of src at dst. It unlinks dst first: a running
// executable cannot be written over (ETXTBSY).
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestChecksumPinning(t *testing.T) {
	bin := buildTPU(t)
	sum, err := accel.FileChecksum(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 64 {
		t.Fatalf("FileChecksum = %q, want 64 hex digits", sum)
	}
	h, _ := newHost(t, func(c *accel.HostConfig) {
		c.Command = nil
		c.PluginDir = filepath.Dir(bin)
		c.Checksums = map[string]string{"tpu": strings.ToUpper(sum)} // case does not matter
		c.HealthInterval = -1                                        // the call finds the crash below
		// The replacement (this test binary) would serve tpu too: only
		// the checksum keeps it out.
		c.Env = []string{testRoleEnv + "=tpu"}
	})
	p := launch(t, h, "tpu")
	if info, err := p.Info(t.Context()); err != nil || !info.Stub {
		t.Fatalf("pinned tpu: Info = %+v, %v", info, err)
	}

	// Replace the binary with another working plugin.
	replaceFile(t, os.Args[0], bin)
	actual, err := accel.FileChecksum(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkRefusal := func(what string, err error) {
		t.Helper()
		var ce *accel.ChecksumError
		if !errors.Is(err, accel.ErrChecksumMismatch) || !errors.As(err, &ce) {
			t.Fatalf("%s: err = %v, want a ChecksumError wrapping ErrChecksumMismatch", what, err)
		}
		if ce.Backend != "tpu" || ce.Path != bin || ce.Expected != sum || ce.Actual != actual {
			t.Errorf("%s: ChecksumError = %+v, want backend tpu, path %s, expected %s, actual %s", what, ce, bin, sum, actual)
		}
		for _, want := range []string{`"tpu"`, bin, sum, actual} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %s", what, err, want)
			}
		}
	}
	_, err = h.Launch(t.Context(), "tpu")
	checkRefusal("Launch of a replaced binary", err)

	// A restart is a launch too: the replaced binary is refused there.
	kill9(t, p.Pid())
	_, err = p.SaveWeights(t.Context(), accel.SaveRequest{ModelID: "m"})
	if !errors.Is(err, accel.ErrPluginDied) {
		t.Fatalf("call after kill -9 with a replaced binary: err = %v, want ErrPluginDied", err)
	}
	checkRefusal("restart with a replaced binary", err)
}

func TestChecksumPinningCommand(t *testing.T) {
	self, err := accel.FileChecksum(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		sum     string
		refused bool
	}{
		"matching": {sum: self},
		"other":    {sum: strings.Repeat("0", 64), refused: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := newHost(t, func(c *accel.HostConfig) {
				c.Checksums = map[string]string{"tpu": tc.sum}
			})
			p, err := h.Launch(t.Context(), "tpu")
			if tc.refused {
				if !errors.Is(err, accel.ErrChecksumMismatch) || !strings.Contains(err.Error(), self) {
					t.Fatalf("Launch with a wrong pin: err = %v, want ErrChecksumMismatch naming %s", err, self)
				}
				return
			}
			if err != nil {
				t.Fatalf("Launch with the right pin: %v", err)
			}
			if _, err := p.Info(t.Context()); err != nil {
				t.Fatal(err)
			}
			// Unpinned backends are not affected.
			launch(t, h, "bigram")
		})
	}
}

// TestAutoMTLS: go-plugin's AutoMTLS gives each launch a fresh client
// certificate and the plugin accepts only that one, so a process that did
// not launch the plugin cannot call it even knowing its address.
func TestAutoMTLS(t *testing.T) {
	h, _ := newHost(t, nil)
	p := launch(t, h, "bigram")
	addr := p.AddrForTest()
	if addr == nil {
		t.Fatal("no address for the launched plugin")
	}
	target := addr.String()
	if addr.Network() == "unix" {
		target = "unix://" + addr.String()
	}
	// The address is live: the refusal below is the TLS layer's.
	conn, err := net.DialTimeout(addr.Network(), addr.String(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", addr.Network(), addr, err)
	}
	conn.Close()

	tests := map[string]credentials.TransportCredentials{
		"plaintext": insecure.NewCredentials(),
		"tls with a self-made client certificate": credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{selfSignedCert(t)},
			// Accept the plugin's certificate: what stops us must be the
			// plugin refusing ours.
			InsecureSkipVerify: true,
		}),
		"tls without a client certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}),
	}
	for name, creds := range tests {
		t.Run(name, func(t *testing.T) {
			cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			r, err := accelv1.NewAcceleratorClient(cc).Info(ctx, &accelv1.InfoRequest{})
			if err == nil {
				t.Fatalf("a stranger called Info on the plugin: %v", r)
			}
			t.Logf("refused: %v", err)
			if r, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "plugin"}); err == nil {
				t.Fatalf("a stranger called the plugin's health check: %v", r)
			}
		})
	}
	// The host that launched it still can.
	if _, err := p.SaveWeights(t.Context(), accel.SaveRequest{ModelID: "m"}); !errors.Is(err, accel.ErrUnknownModel) {
		t.Fatalf("the host's call after the strangers': err = %v, want ErrUnknownModel", err)
	}
}

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
