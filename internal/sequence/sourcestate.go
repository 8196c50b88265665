package sequence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// SourceState is the record that one source's adapter keeps in the data directory, in a file
// of its own (<source>.state), when its upstream does not keep its place for it (a RabbitMQ
// stream read over AMQP 0-9-1): it implements source.Store. The record is the adapter's, up to
// MaxSourceState bytes; this package only stores it.
//
// An adapter may save its place many times a second, so a save is one write in place and an
// fdatasync, not a new file renamed over the old one (five times the time): the file holds two
// slots, each with a sequence number and a checksum, and a save overwrites the slot that does
// not hold the latest record. A save that a crash cuts short leaves a slot whose checksum fails,
// and the other slot, the record before, is what loads.
//
// Concurrency: Load and Save belong to one goroutine at a time (the adapter's Run); a mutex
// keeps them safe from others all the same. The Dir's lock keeps other processes out.
type SourceState struct {
	dir  *Dir
	name string
	file string

	mu     sync.Mutex
	read   bool   // the file was read: seq and slot are known
	exists bool   // the file exists
	seq    uint64 // the sequence number of the latest record
	slot   int64  // the slot that holds it
}

// MaxSourceState is the largest record a SourceState keeps.
const MaxSourceState = stateSlot - stateHeader

const (
	stateSlot   = 4096 // two slots, each one page
	stateHeader = 4 + 8 + 4 + 4
	stateMagic  = "sxs1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SourceState returns the record of source's adapter. It does not touch the disk; a record never
// saved loads as nil.
func (d *Dir) SourceState(source string) *SourceState {
	return &SourceState{dir: d, name: source, file: filepath.Join(d.path, source+".state")}
}

// Load returns the record as last saved, or nil if it never was. A file in which neither slot
// holds a whole record is an error.
func (s *SourceState) Load() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.load()
	if err != nil {
		return nil, fmt.Errorf("state of %q: %w", s.name, err)
	}
	return b, nil
}

func (s *SourceState) load() ([]byte, error) {
	raw, err := os.ReadFile(s.file)
	if errors.Is(err, os.ErrNotExist) {
		s.read, s.exists, s.seq, s.slot = true, false, 0, 1
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var (
		best    []byte
		found   bool
		seq     uint64
		slotted int64
	)
	for slot := int64(0); slot < 2; slot++ {
		rec, n, ok := decodeSlot(raw, slot)
		if ok && (!found || n > seq) {
			best, found, seq, slotted = rec, true, n, slot
		}
	}
	if !found {
		return nil, fmt.Errorf("%s holds no whole record (%d bytes): remove it only if the source may start again from its configured start", s.file, len(raw))
	}
	s.read, s.exists, s.seq, s.slot = true, true, seq, slotted
	return best, nil
}

// decodeSlot returns the record in slot of raw, its sequence number, and whether the slot holds
// a whole one.
func decodeSlot(raw []byte, slot int64) ([]byte, uint64, bool) {
	at := slot * stateSlot
	if int64(len(raw)) < at+stateHeader {
		return nil, 0, false
	}
	h := raw[at : at+stateHeader]
	if string(h[:4]) != stateMagic {
		return nil, 0, false
	}
	seq := binary.LittleEndian.Uint64(h[4:12])
	n := int64(binary.LittleEndian.Uint32(h[12:16]))
	sum := binary.LittleEndian.Uint32(h[16:20])
	if n > MaxSourceState || int64(len(raw)) < at+stateHeader+n {
		return nil, 0, false
	}
	rec := raw[at+stateHeader : at+stateHeader+n]
	c := crc32.Update(crc32.Checksum(h[4:16], castagnoli), castagnoli, rec)
	if c != sum {
		return nil, 0, false
	}
	return append([]byte(nil), rec...), seq, true
}

// Save replaces the record with b, and returns once it is on disk: it writes b into the slot
// that does not hold the latest record, and syncs it. After a crash the record loads as b or,
// if the crash cut this save short, as the one before, never neither.
func (s *SourceState) Save(b []byte) error {
	if len(b) > MaxSourceState {
		return fmt.Errorf("state of %q: a record of %d bytes, more than %d", s.name, len(b), MaxSourceState)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read {
		if _, err := s.load(); err != nil {
			return fmt.Errorf("state of %q: %w", s.name, err)
		}
	}
	slot, seq := 1-s.slot, s.seq+1
	buf := make([]byte, stateHeader+len(b))
	copy(buf, stateMagic)
	binary.LittleEndian.PutUint64(buf[4:12], seq)
	binary.LittleEndian.PutUint32(buf[12:16], uint32(len(b)))
	copy(buf[stateHeader:], b)
	binary.LittleEndian.PutUint32(buf[16:20], crc32.Update(crc32.Checksum(buf[4:16], castagnoli), castagnoli, b))
	if err := s.write(buf, slot*stateSlot); err != nil {
		return fmt.Errorf("state of %q: %w", s.name, err)
	}
	s.seq, s.slot = seq, slot
	return nil
}

// write writes buf at off in the file, making the file if need be (its directory entry synced
// then), and syncs it.
func (s *SourceState) write(buf []byte, off int64) error {
	f, err := os.OpenFile(s.file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		f.Close()
		return err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", s.file, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if s.exists {
		return nil
	}
	d, err := os.Open(s.dir.path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.dir.path, err)
	}
	s.exists = true
	return nil
}
