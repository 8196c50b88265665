package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/streamux/streamux/internal/sequence"
)

// FileStore keeps positions in the data directory, a file per sink (sinks/<name>.pos), each
// saved by atomic replace (sequence.Dir.WriteFile): after a crash a position is the one saved
// before or the one after, never neither.
type FileStore struct {
	Dir *sequence.Dir
}

func posFile(name string) string { return "sinks/" + name + ".pos" }

// Load returns the position saved for name, nil if none.
func (s FileStore) Load(name string) (Position, error) {
	b, err := s.Dir.ReadFile(posFile(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): remove it to start the sink from now", posFile(name), err)
	}
	return p, nil
}

// Save replaces name's position.
func (s FileStore) Save(name string, p Position) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.Dir.WriteFile(posFile(name), append(b, '\n'))
}

// Remove forgets name's position.
func (s FileStore) Remove(name string) error { return s.Dir.RemoveFile(posFile(name)) }

// MemoryStore keeps positions in memory, for a server without a data directory: a restart
// starts every sink from then.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Position
}

// Load returns the position saved for name, nil if none.
func (s *MemoryStore) Load(name string) (Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.m[name]; ok {
		return copyPosition(p), nil
	}
	return nil, nil
}

// Save replaces name's position.
func (s *MemoryStore) Save(name string, p Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Position)
	}
	s.m[name] = copyPosition(p)
	return nil
}

// Remove forgets name's position.
func (s *MemoryStore) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}
