package docs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's top directory, where go.mod is, from this package's directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("the repository's root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("the repository's root %s has no go.mod: %v", dir, err)
	}
	return dir
}

// markdownFiles returns README.md and every .md file under docs/, relative to root.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list docs/: %v", err)
	}
	return files
}

// doc is a Markdown file read into what the tests look at: its links and headings, outside code.
type doc struct {
	links    []link
	anchors  map[string]bool
	yamlCode []codeBlock // fenced ```yaml blocks
}

type link struct {
	line   int
	target string
}

type codeBlock struct {
	line int // of the first line inside the fence
	text string
}

var (
	// [text](target) or ![alt](target), with an optional "title"; the text may hold `code`.
	linkRE = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// `code` spans, whose brackets and parentheses are not links.
	codeSpanRE = regexp.MustCompile("`+[^`]*`+")
	headingRE  = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
)

func readDoc(t *testing.T, path string) doc {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	d := doc{anchors: map[string]bool{}}
	seen := map[string]int{}
	var fence string // the open fence's marker, "" outside code
	var block *codeBlock
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
				if block != nil {
					d.yamlCode = append(d.yamlCode, *block)
					block = nil
				}
			} else if block != nil {
				block.text += line + "\n"
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			if strings.TrimPrefix(trimmed, fence) == "yaml" {
				block = &codeBlock{line: i + 2}
			}
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil {
			slug := slugify(m[2])
			if n := seen[slug]; n > 0 {
				d.anchors[fmt.Sprintf("%s-%d", slug, n)] = true
			} else {
				d.anchors[slug] = true
			}
			seen[slug]++
		}
		for _, m := range linkRE.FindAllStringSubmatch(codeSpanRE.ReplaceAllString(line, ""), -1) {
			d.links = append(d.links, link{line: i + 1, target: m[1]})
		}
	}
	return d
}

// slugify makes a heading's anchor as GitHub does: lower case, links reduced to their text,
// everything but letters, digits, spaces, '-' and '_' dropped, spaces made '-'.
func slugify(heading string) string {
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestSlugify(t *testing.T) {
	for heading, want := range map[string]string{
		"Quick start":                                  "quick-start",
		"`GET /v1/stream`":                             "get-v1stream",
		"A `nats` source with `stream:`":               "a-nats-source-with-stream",
		"Sinks and sources' own places in a cluster":   "sinks-and-sources-own-places-in-a-cluster",
		"The cluster log: what it costs, and a server": "the-cluster-log-what-it-costs-and-a-server",
		"Source `websocket` (an upstream feed)":        "source-websocket-an-upstream-feed",
		"[Go client](client-go.md)":                    "go-client",
	} {
		if got := slugify(heading); got != want {
			t.Errorf("slugify(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestLinkCheckerFindsBadLinks runs the checks' parts on links that must fail, so that a checker
// that accepts everything cannot pass.
func TestLinkCheckerFindsBadLinks(t *testing.T) {
	dir := t.TempDir()
	md := "# Title\n\n## A `code` heading\n\n[ok](#title) [ok2](#a-code-heading) [gone](missing.md)\n" +
		"`[not a link](nowhere.md)`\n\n```\n[in code](nowhere.md)\n# not a heading\n```\n"
	path := filepath.Join(dir, "x.md")
	if err := os.WriteFile(path, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	d := readDoc(t, path)
	var targets []string
	for _, l := range d.links {
		targets = append(targets, l.target)
	}
	if got, want := strings.Join(targets, " "), "#title #a-code-heading missing.md"; got != want {
		t.Errorf("links = %q, want %q", got, want)
	}
	if !d.anchors["title"] || !d.anchors["a-code-heading"] || d.anchors["not-a-heading"] {
		t.Errorf("anchors = %v, want title and a-code-heading only", d.anchors)
	}
}
