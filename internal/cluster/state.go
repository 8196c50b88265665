package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// StateBucket is the KV bucket of the small records the nodes share: prefix + "STATE".
func StateBucket(prefix string) string { return prefix + "STATE" }

// ErrRevision is what Put returns when the record is not at the revision it was given: another
// node wrote it (or removed it) since this one read it. A holder whose lease passed on while it
// was cut off gets it, and so cannot move a record back.
var ErrRevision = errors.New("cluster: the record was changed by another node")

// State is the cluster's small records, which every node reads and the holder of a lease
// writes: the sinks' definitions and positions, and the places that sources keep in their
// upstream themselves (source.Resuming). It is the KV bucket StateBucket(prefix), stored as the
// logs are (file or memory, with the same replicas), keeping one revision of each key. Every
// write that must not undo another's names the revision it replaces (Put), as the leases do.
//
// A State is safe for concurrent use.
type State struct {
	c        *Conn
	bucketMu sync.Mutex
	kv       jetstream.KeyValue // guarded by bucketMu until made
}

// State returns the cluster's records. It does no I/O; the bucket is made at the first use.
func (c *Conn) State() *State { return &State{c: c} }

// bucket makes the state bucket, or updates it to the configured replicas, once per State.
func (s *State) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.bucketMu.Lock()
	defer s.bucketMu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	cfg := s.c.cfg
	storage := jetstream.FileStorage
	if cfg.Storage == StorageMemory {
		storage = jetstream.MemoryStorage
	}
	kv, err := s.c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket(cfg.StreamPrefix),
		Description: "streamux: the sinks' definitions and positions, the sources' places upstream",
		History:     1,
		Storage:     storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: state bucket %s: %w", StateBucket(cfg.StreamPrefix), err)
	}
	s.kv = kv
	return kv, nil
}

// Get returns the record key and its revision; nil and 0 when there is none (never written,
// or deleted).
func (s *State) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("cluster: state %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Put replaces the record key, at revision rev, by value, and returns its new revision. With
// rev 0 it makes the record, which must not exist. ErrRevision: the record is not at rev (for
// 0: it exists).
func (s *State) Put(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = kv.Create(ctx, key, value)
	} else {
		n, err = kv.Update(ctx, key, value, rev)
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), wrongLastSeq(err):
		return 0, fmt.Errorf("%w: %s", ErrRevision, key)
	}
	return 0, fmt.Errorf("cluster: state %s: %w", key, err)
}

// Set replaces the record key by value, whatever it was: for what only one node writes, or
// where the last word may win (what a sink's node shows of it).
func (s *State) Set(ctx context.Context, key string, value []byte) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("cluster: state %s: %w", key, err)
	}
	return nil
}

// Delete removes the record key; a holder that still has its revision can no longer Put it.
func (s *State) Delete(ctx context.Context, key string) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster: state %s: %w", key, err)
	}
	return nil
}

// Change is one record as Watch tells it: its value, or Deleted.
type Change struct {
	Key     string
	Value   []byte
	Deleted bool
}

// Watch calls fn with every record whose key matches pattern (a NATS subject pattern:
// "sinks.def.*"), then with every change of them, until ctx ends (nil) or the servers fail
// (the error: watch again). caughtUp, if not nil, is called once, after the records that
// existed when the watch began. fn and caughtUp run on the caller's goroutine.
func (s *State) Watch(ctx context.Context, pattern string, fn func(Change), caughtUp func()) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, pattern)
	if err != nil {
		return fmt.Errorf("cluster: watch state %s: %w", pattern, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("cluster: watch state %s: ended", pattern)
			}
			if e == nil {
				if caughtUp != nil {
					caughtUp()
					caughtUp = nil
				}
				continue
			}
			op := e.Operation()
			fn(Change{Key: e.Key(), Value: e.Value(), Deleted: op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge})
		}
	}
}
