// Package sequence keeps each source's sequence numbers across runs of the process, so that an
// event id ("<source>:<seq>") names one message forever: a restarted streamux goes on after the
// numbers an earlier run gave out instead of counting from 1 again.
//
// A Dir is a data directory that one process holds at a time (an exclusive lock on its lock
// file). In it, each source has a small file that says how far its numbers may have gone. A
// Counter reserves numbers in blocks, writing the end of the block to its file (write, fsync,
// rename) before any number of the block is given out, so that a run that is killed cannot have
// given out a number past what its file says. A clean stop writes the last number given out, so
// the next run goes on right after it, with no hole; a run that was killed leaves a hole of at
// most one block.
//
// Concurrency: a Dir's methods are safe from any goroutine; a Counter belongs to one goroutine
// (its router).
package sequence

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Block is how many numbers a Counter reserves with one write. At 100,000 messages a second
// that is a write (about a millisecond with its fsync) every 0.65 s; a run that is killed skips
// at most this many numbers.
const Block = 1 << 16

// Dir is an open data directory. Create it with Open.
type Dir struct {
	path string
	lock *os.File

	mu   sync.Mutex
	open map[string]bool // the sources with a Counter
}

// Open creates the directory at path if need be, and locks it for this process: a second
// process that opens it fails, as two processes counting the same source would give one
// number to two messages.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(path, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another streamux process (set data_dir to a directory of this one's own)", path)
		}
		return nil, fmt.Errorf("data directory %s: lock: %w", path, err)
	}
	return &Dir{path: path, lock: lock, open: make(map[string]bool)}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// Close releases the directory for another process. Close the Counters first.
func (d *Dir) Close() error {
	return d.lock.Close() // closing the file releases the lock
}

// state is what a source's file holds.
type state struct {
	// Reserved is the highest number any run may have given out.
	Reserved uint64 `json:"reserved"`
	// Last is, after a clean stop, the last number given out; Clean says it is set.
	Last  uint64 `json:"last,omitempty"`
	Clean bool   `json:"clean,omitempty"`
}

// Counter gives out the numbers of one source. Create it with Dir.Counter.
type Counter struct {
	dir      *Dir
	name     string
	file     string
	first    uint64
	reserved uint64
}

// Counter opens source's counter and reserves its first block. The source's numbers start at
// First: 1 for a source that never ran; otherwise right after the last number an earlier run
// gave out when it stopped cleanly, or after everything it had reserved when it did not.
func (d *Dir) Counter(source string) (*Counter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open[source] {
		return nil, fmt.Errorf("sequence: source %q is counted twice", source)
	}
	c := &Counter{dir: d, name: source, file: filepath.Join(d.path, source+".seq")}
	raw, err := os.ReadFile(c.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.first = 1
	case err != nil:
		return nil, fmt.Errorf("sequence of %q: %w", source, err)
	default:
		var s state
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("sequence of %q: %s is damaged (%v): remove it only if no client will resume from an id of this source", source, c.file, err)
		}
		c.first = s.Reserved + 1
		if s.Clean {
			c.first = s.Last + 1
		}
	}
	if _, err := c.Reserve(c.first); err != nil {
		return nil, err
	}
	d.open[source] = true
	return c, nil
}

// First is the first number of this run.
func (c *Counter) First() uint64 { return c.first }

// Reserved is the highest number that may be given out without another Reserve.
func (c *Counter) Reserved() uint64 { return c.reserved }

// Reserve makes sure that the numbers up to n may be given out: if n is past the reservation,
// it reserves the block from n on and returns once that is on disk. It returns the highest
// number reserved.
func (c *Counter) Reserve(n uint64) (uint64, error) {
	if n <= c.reserved {
		return c.reserved, nil
	}
	r := n + Block - 1
	if err := c.write(state{Reserved: r}); err != nil {
		return c.reserved, err
	}
	c.reserved = r
	return r, nil
}

// Close records that last was the last number given out (0: none, when the run gave out
// nothing and the next starts where this one did), so that the next run goes on right after
// it, and forgets the counter.
func (c *Counter) Close(last uint64) error {
	if last < c.first {
		last = c.first - 1
	}
	err := c.write(state{Reserved: max(c.reserved, last), Last: last, Clean: true})
	c.dir.mu.Lock()
	delete(c.dir.open, c.name)
	c.dir.mu.Unlock()
	return err
}

// write replaces the file with s (Dir.WriteFile).
func (c *Counter) write(s state) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("sequence of %q: %w", c.name, err)
	}
	if err := c.dir.WriteFile(c.name+".seq", append(raw, '\n')); err != nil {
		return fmt.Errorf("sequence of %q: %w", c.name, err)
	}
	return nil
}

// WriteFile replaces the file name (a path relative to the directory, whose own directories
// are made as needed) with b: a new file, synced, renamed over the old one, and its directory
// synced, so that after a crash the file is the old one or the new, never neither. What else
// keeps state in the data directory (a sink's position) writes it so. Safe from any goroutine
// for different names.
func (d *Dir) WriteFile(name string, b []byte) error {
	path := filepath.Join(d.path, name)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadFile returns the file name's bytes (relative to the directory); an error wrapping
// fs.ErrNotExist when there is none.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.path, name))
}

// RemoveFile removes the file name (relative to the directory), if there is one.
func (d *Dir) RemoveFile(name string) error {
	err := os.Remove(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
