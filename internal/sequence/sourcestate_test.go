package sequence

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/source"
)

var _ source.Store = (*SourceState)(nil)

// A source's record loads as nil until saved, then as last saved, in the next run of the process
// too, whatever the records' sizes.
func TestSourceState(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	st := d.SourceState("orders")
	if b, err := st.Load(); err != nil || b != nil {
		t.Fatalf("never saved: %q, %v", b, err)
	}
	recs := []string{`{"offset":1}`, strings.Repeat("x", MaxSourceState), `{"offset":22}`, "", `{"offset":333}`}
	for i, rec := range recs {
		if err := st.Save([]byte(rec)); err != nil {
			t.Fatal(err)
		}
		if b, err := d.SourceState("orders").Load(); err != nil || string(b) != rec {
			t.Fatalf("after save %d: %q, %v", i, trimmed(b), err)
		}
	}
	if err := st.Save(make([]byte, MaxSourceState+1)); err == nil {
		t.Errorf("a record of %d bytes was taken", MaxSourceState+1)
	}
	d.Close()

	d = open(t, dir)
	defer d.Close()
	st = d.SourceState("orders")
	if b, err := st.Load(); err != nil || string(b) != `{"offset":333}` {
		t.Fatalf("after a restart: %q, %v", b, err)
	}
	if err := st.Save([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if b, err := d.SourceState("orders").Load(); err != nil || string(b) != "next" {
		t.Fatalf("a save after a restart: %q, %v", b, err)
	}
	if b, err := d.SourceState("other").Load(); err != nil || b != nil {
		t.Fatalf("another source's record: %q, %v", b, err)
	}
}

// A save cut short by a crash leaves the record before it; a file with no whole record is an
// error, not nothing.
func TestSourceStateTorn(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	defer d.Close()
	st := d.SourceState("s")
	for i := range 3 {
		if err := st.Save(fmt.Appendf(nil, "record %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "s.state")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The last save went to slot 0 (saves alternate from slot 0): tear it.
	for _, tear := range []func([]byte){
		func(b []byte) { b[stateHeader+3] ^= 0xff },                         // a byte of the record
		func(b []byte) { b[5] ^= 0x01 },                                     // the sequence number
		func(b []byte) { copy(b[:stateHeader], make([]byte, stateHeader)) }, // the header never written
	} {
		torn := bytes.Clone(raw)
		tear(torn)
		if err := os.WriteFile(file, torn, 0o600); err != nil {
			t.Fatal(err)
		}
		st := d.SourceState("s")
		if b, err := st.Load(); err != nil || string(b) != "record 1" {
			t.Fatalf("the last save torn: %q, %v; want the one before", b, err)
		}
		// The next save keeps the whole record: it goes to the torn slot.
		if err := st.Save([]byte("record 3")); err != nil {
			t.Fatal(err)
		}
		if b, err := d.SourceState("s").Load(); err != nil || string(b) != "record 3" {
			t.Fatalf("after the torn one: %q, %v", b, err)
		}
	}
	if err := os.WriteFile(file, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := d.SourceState("s").Load(); err == nil || !strings.Contains(err.Error(), "no whole record") {
		t.Fatalf("a damaged file: %q, %v", b, err)
	}
}

func trimmed(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
