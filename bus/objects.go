package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Ref  string // "sha256-<hex>" of the content
	Size int64
}

// RefOf returns the object reference of data.
func RefOf(data []byte) string {
	sum := sha256.Sum256(data)
	return RefPrefix + hex.EncodeToString(sum[:])
}

func refFromHash(h hash.Hash) string { return RefPrefix + hex.EncodeToString(h.Sum(nil)) }

// PutObject stores the content of r under its SHA-256 and returns its ref.
// It streams: the content is hashed while it uploads under a temporary
// name, which is then renamed to the ref — or deleted, if that content was
// already stored. At most Config.MaxObjectSize bytes are read; more gives
// an error wrapping ErrTooLarge and stores nothing.
//
// Two concurrent puts of the same new content both succeed; one copy's
// chunks may then be left unreferenced in the store (content stays
// correct).
func (b *Bus) PutObject(ctx context.Context, r io.Reader) (ObjectInfo, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Without a deadline the object store gives every chunk's ack the
		// JetStream default of 5 s, which a busy machine writing a large
		// checkpoint exceeds; bound the whole put instead.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, putTimeout)
		defer cancel()
	}
	obs, err := b.objectStore(ctx)
	if err != nil {
		return ObjectInfo{}, err
	}
	h := sha256.New()
	lr := &limitReader{r: io.TeeReader(r, h), left: b.maxObj, limit: b.maxObj}
	tmp := "tmp-" + nuid.Next()
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: tmp}, lr)
	if err != nil {
		_ = obs.Delete(context.WithoutCancel(ctx), tmp)
		if lr.err != nil {
			return ObjectInfo{}, lr.err
		}
		return ObjectInfo{}, fmt.Errorf("put object: %w", err)
	}
	out := ObjectInfo{Ref: refFromHash(h), Size: int64(info.Size)}
	if _, err := obs.GetInfo(ctx, out.Ref); err == nil {
		return out, b.dropTemp(ctx, obs, tmp)
	}
	err = obs.UpdateMeta(ctx, tmp, jetstream.ObjectMeta{Name: out.Ref})
	if errors.Is(err, jetstream.ErrObjectAlreadyExists) {
		return out, b.dropTemp(ctx, obs, tmp)
	}
	if err != nil {
		_ = obs.Delete(context.WithoutCancel(ctx), tmp)
		return ObjectInfo{}, fmt.Errorf("put object %s: rename: %w", out.Ref, err)
	}
	return out, nil
}

func (b *Bus) dropTemp(ctx context.Context, obs jetstream.ObjectStore, tmp string) error {
	if err := obs.Delete(context.WithoutCancel(ctx), tmp); err != nil {
		b.log.Warn("delete temporary object", "name", tmp, "err", err)
	}
	return nil
}

// putTimeout bounds a PutObject whose context has no deadline.
const putTimeout = 5 * time.Minute

// PutBytes stores data under its SHA-256. Content already stored is not
// uploaded again.

func (b *Bus) PutBytes(ctx context.Context, data []byte) (ObjectInfo, error) {
	if int64(len(data)) > b.maxObj {
		return ObjectInfo{}, fmt.Errorf("object of %d bytes exceeds %d bytes: %w", len(data), b.maxObj, ErrTooLarge)
	}
	ref := RefOf(data)
	if info, err := b.StatObject(ctx, ref); err == nil {
		return info, nil
	}
	return b.PutObject(ctx, bytes.NewReader(data))
}

// StatObject returns the info of a stored object; ErrNotFound if absent.
func (b *Bus) StatObject(ctx context.Context, ref string) (ObjectInfo, error) {
	if err := ValidRef(ref); err != nil {
		return ObjectInfo{}, err
	}
	obs, err := b.objectStore(ctx)
	if err != nil {
		return ObjectInfo{}, err
	}
	info, err := obs.GetInfo(ctx, ref)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return ObjectInfo{}, fmt.Errorf("object %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat object %s: %w", ref, err)
	}
	return ObjectInfo{Ref: ref, Size: int64(info.Size)}, nil
}

// GetObject reads a whole object into memory (the store verifies its
// digest). Objects above Config.MaxObjectSize give ErrTooLarge; stream
// those with OpenObject.
func (b *Bus) GetObject(ctx context.Context, ref string) ([]byte, error) {
	info, err := b.StatObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	if info.Size > b.maxObj {
		return nil, fmt.Errorf("object %s of %d bytes exceeds %d bytes: %w", ref, info.Size, b.maxObj, ErrTooLarge)
	}
	rc, err := b.OpenObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, 0, info.Size)
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("read object %s: %w", ref, err)
	}
	return buf.Bytes(), nil
}

// OpenObject streams an object. The reader fails at EOF if the content
// does not match its digest. Close it.
func (b *Bus) OpenObject(ctx context.Context, ref string) (io.ReadCloser, error) {
	if err := ValidRef(ref); err != nil {
		return nil, err
	}
	obs, err := b.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	res, err := obs.Get(ctx, ref)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("object %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open object %s: %w", ref, err)
	}
	return res, nil
}

// limitReader fails with ErrTooLarge once more than limit bytes are read.
type limitReader struct {
	r     io.Reader
	left  int64
	limit int64
	err   error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.err = fmt.Errorf("object exceeds %d bytes: %w", l.limit, ErrTooLarge)
		return 0, l.err
	}
	return n, err
}
