package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeTestCommand checks that README.md begins with the two commands a fresh machine runs,
// and that .ci/run runs exactly the second, the test command, as the README gives it.
func TestReadmeTestCommand(t *testing.T) {
	root := root(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```sh\n")
	if !ok {
		t.Fatal("README.md has no ```sh block")
	}
	block, _, _ := strings.Cut(rest, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) != 2 {
		t.Fatalf("README.md's first block has %d lines, want the 2 commands:\n%s", len(lines), block)
	}
	command := func(line string) string {
		cmd, _, _ := strings.Cut(line, "   #")
		return strings.TrimSpace(cmd)
	}
	if got := command(lines[0]); got != "go run ./cmd/streamux" {
		t.Errorf("README.md's first command = %q, want go run ./cmd/streamux", got)
	}
	test := command(lines[1])
	if !strings.HasPrefix(test, "go test ") {
		t.Fatalf("README.md's second command = %q, want the tests", test)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, l := range strings.Split(string(ci), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			last = l
		}
	}
	if last != test {
		t.Errorf(".ci/run ends with\n\t%s\nbut README.md's test command is\n\t%s", last, test)
	}
}
