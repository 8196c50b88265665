package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// String is the position as event ids, one per source in the order of their names, joined by
// commas: "orders:1042" for a sink of one source, "a:3,b:9" for more; "" for none. It is the
// last id the sink is done with in each source, in the form a stream's from= takes.
func (p Position) String() string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(p[n], 10))
	}
	return b.String()
}

// MarshalJSON writes the position as its String: the contract's "last id delivered".
func (p Position) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a position written by MarshalJSON, or as an object of sequences by
// source ({"orders":1042}), as positions were saved before.
func (p *Position) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		var m map[string]uint64
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		*p = m
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a sink's position: %w", err)
	}
	out := Position{}
	for id := range strings.SplitSeq(s, ",") {
		if id == "" {
			continue
		}
		i := strings.LastIndexByte(id, ':')
		if i <= 0 {
			return fmt.Errorf("a sink's position: %q is not an id (source:seq)", id)
		}
		seq, err := strconv.ParseUint(id[i+1:], 10, 64)
		if err != nil {
			return fmt.Errorf("a sink's position: %q is not an id (source:seq)", id)
		}
		out[id[:i]] = seq
	}
	*p = out
	return nil
}
