package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinks checks every link of README.md and docs/: a relative one must lead to a file or
// directory of the repository (and to a heading of it, for a '#' into Markdown); none may lead
// outside the repository, by an absolute path or by climbing out of it with '..'.
func TestLinks(t *testing.T) {
	root := root(t)
	docs := map[string]doc{}
	files := markdownFiles(t, root)
	for _, f := range files {
		docs[f] = readDoc(t, filepath.Join(root, f))
	}
	anchorsOf := func(rel string) map[string]bool {
		if d, ok := docs[rel]; ok {
			return d.anchors
		}
		return readDoc(t, filepath.Join(root, rel)).anchors
	}
	checked := 0
	for _, f := range files {
		for _, l := range docs[f].links {
			where := fmt.Sprintf("%s:%d: link %q", f, l.line, l.target)
			target := l.target
			if u := strings.ToLower(target); strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "mailto:") {
				continue
			}
			if strings.Contains(target, "://") {
				t.Errorf("%s: a scheme other than http, https and mailto", where)
				continue
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			if strings.HasPrefix(path, "/") || strings.Contains(path, "/work/shared") || filepath.IsAbs(path) {
				t.Errorf("%s: an absolute path, which leads out of a clone of the repository", where)
				continue
			}
			rel := f
			if path != "" {
				rel = filepath.Join(filepath.Dir(f), filepath.FromSlash(path))
				if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					t.Errorf("%s: leads outside the repository (%s)", where, rel)
					continue
				}
				info, err := os.Stat(filepath.Join(root, rel))
				if err != nil {
					t.Errorf("%s: no such file in the repository (%s)", where, rel)
					continue
				}
				if info.IsDir() {
					if anchor != "" {
						t.Errorf("%s: an anchor into a directory", where)
					}
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(rel, ".md") {
				continue
			}
			if !anchorsOf(rel)[anchor] {
				t.Errorf("%s: %s has no heading whose anchor is #%s", where, rel, anchor)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no relative link at all: the link parser is broken")
	}
	t.Logf("%d relative links checked in %d files", checked, len(files))
}
