package accel

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestFromStatus(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := map[string]struct {
		ctx  context.Context
		err  error
		want error
	}{
		"unimplemented":         {live, status.Error(codes.Unimplemented, "x"), ErrNotImplemented},
		"not found":             {live, status.Error(codes.NotFound, "x"), ErrUnknownModel},
		"invalid argument":      {live, status.Error(codes.InvalidArgument, "x"), ErrInvalidArgument},
		"unavailable":           {live, status.Error(codes.Unavailable, "connection refused"), ErrPluginDied},
		"canceled, live ctx":    {live, status.Error(codes.Canceled, "grpc: the client connection is closing"), ErrPluginDied},
		"not a status":          {live, errors.New("broken pipe"), ErrPluginDied},
		"caller cancelled":      {cancelled, status.Error(codes.Canceled, "context canceled"), context.Canceled},
		"cancelled unavailable": {cancelled, status.Error(codes.Unavailable, "x"), context.Canceled},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := fromStatus(tc.ctx, "Info", tc.err)
			if !errors.Is(got, tc.want) {
				t.Fatalf("fromStatus(%v) = %v, want it to wrap %v", tc.err, got, tc.want)
			}
			if tc.want != ErrPluginDied && errors.Is(got, ErrPluginDied) {
				t.Fatalf("fromStatus(%v) = %v: must not wrap ErrPluginDied", tc.err, got)
			}
		})
	}
}

func TestToStatusRoundTrip(t *testing.T) {
	for _, s := range []error{ErrNotImplemented, ErrUnknownModel, ErrInvalidArgument} {
		err := fromStatus(context.Background(), "X", toStatus(s))
		if !errors.Is(err, s) || err.Error() != s.Error() {
			t.Errorf("round trip of %v gave %v", s, err)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(3)
	tb.Write([]byte("a\nb\n"))
	tb.Write([]byte("c\nd"))
	tb.Write([]byte("e\nf\n"))
	got := tb.Lines()
	want := []string{"c", "de", "f"}
	if len(got) != len(want) {
		t.Fatalf("Lines() = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Lines() = %q, want %q", got, want)
		}
	}
}
