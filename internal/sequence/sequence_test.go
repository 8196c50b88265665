package sequence

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t testing.TB, dir string) *Dir {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func counter(t *testing.T, d *Dir, name string) *Counter {
	t.Helper()
	c, err := d.Counter(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A clean stop goes on right after the last number; a kill goes on after the reservation, so
// no number is given twice either way.
func TestRuns(t *testing.T) {
	dir := t.TempDir()

	d := open(t, dir)
	c := counter(t, d, "a")
	if c.First() != 1 || c.Reserved() != Block {
		t.Fatalf("new source: first %d, reserved %d", c.First(), c.Reserved())
	}
	if _, err := c.Reserve(Block + 10); err != nil || c.Reserved() != 2*Block+9 {
		t.Fatalf("reserve past the block: %d, %v", c.Reserved(), err)
	}
	if err := c.Close(Block + 10); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d = open(t, dir)
	c = counter(t, d, "a")
	if c.First() != Block+11 {
		t.Fatalf("after a clean stop at %d: first %d", Block+10, c.First())
	}
	// Killed: no Close, no Dir.Close beyond what the process's end does.
	reserved := c.Reserved()
	d.Close()

	d = open(t, dir)
	c = counter(t, d, "a")
	if c.First() != reserved+1 {
		t.Fatalf("after a kill with %d reserved: first %d", reserved, c.First())
	}
	// A run that gave out nothing leaves the next one where it started.
	if err := c.Close(0); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = open(t, dir)
	defer d.Close()
	if c2 := counter(t, d, "a"); c2.First() != reserved+1 {
		t.Fatalf("after an empty run: first %d, want %d", c2.First(), reserved+1)
	}
	if b := counter(t, d, "b"); b.First() != 1 {
		t.Fatalf("another source: first %d", b.First())
	}
	if _, err := d.Counter("b"); err == nil {
		t.Fatal("a source counted twice")
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another streamux") {
		t.Fatalf("second open: %v", err)
	}
	d.Close()
	open(t, dir).Close()
}

func TestDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.seq"), []byte("{\"reserved\":"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := open(t, dir)
	defer d.Close()
	if _, err := d.Counter("a"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
}

func TestUnwritable(t *testing.T) {
	if _, err := Open("/proc/streamux-data"); err == nil { // not even root makes one there
		t.Fatal("opened a directory that cannot be made")
	}
}

func BenchmarkReserve(b *testing.B) {
	d := open(b, b.TempDir())
	defer d.Close()
	c, err := d.Counter("a")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := c.Reserve(c.Reserved() + 1); err != nil {
			b.Fatal(err)
		}
	}
}

// WriteFile replaces a file, in a directory it makes, and leaves no temporary file; ReadFile and
// RemoveFile find it, and removing what is not there is no error.
func TestDirFiles(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, v := range []string{"one", "two"} {
		if err := d.WriteFile("sinks/a.pos", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := d.ReadFile("sinks/a.pos"); err != nil || string(b) != "two" {
		t.Errorf("read %q, %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(d.Path(), "sinks", "*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := d.RemoveFile("sinks/a.pos"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("sinks/a.pos"); !os.IsNotExist(err) {
		t.Errorf("after removal: %v", err)
	}
	if err := d.RemoveFile("sinks/a.pos"); err != nil {
		t.Errorf("removing it again: %v", err)
	}
}
