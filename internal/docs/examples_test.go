package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	_ "github.com/streamux/streamux/internal/sink/all"   // every sink type, as the server has them
	_ "github.com/streamux/streamux/internal/source/all" // every source type, as the server has them
)

// exampleEnv gives each ${NAME} the examples use a value of the form its field wants. An example
// that uses another variable fails until it is added here.
var exampleEnv = map[string]string{
	"DASHBOARD_KEY_SHA256": strings.Repeat("a1", 32),
	"INGEST_KEY_SHA256":    strings.Repeat("b2", 32),
	"OPS_KEY_SHA256":       strings.Repeat("c3", 32),
	"CLIENTS_KEY_SHA256":   strings.Repeat("d4", 32),
	"STREAMUX_JWT_SECRET":  strings.Repeat("s", 40),
	"HOOK_SECRET":          "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

func exampleFiles(t *testing.T, root string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if err != nil {
		t.Fatalf("list examples/: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("examples/ holds no .yaml file")
	}
	return files
}

// TestExamplesLoad loads every example configuration as `streamux -config FILE` does before it
// serves: config.Load (strict decoding, ${ENV}, defaults, every source's and sink's validation),
// the authenticator the server builds from auth:, and the check that refuses a listener off
// loopback without auth.
func TestExamplesLoad(t *testing.T) {
	for _, path := range exampleFiles(t, root(t)) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			for _, m := range envRefRE.FindAllStringSubmatch(string(raw), -1) {
				v, ok := exampleEnv[m[1]]
				if !ok && m[2] == "" {
					t.Fatalf("${%s} has no value in exampleEnv: add one of the form its field wants", m[1])
				}
				if ok {
					t.Setenv(m[1], v)
				}
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			if !cfg.Auth.Disabled() {
				if _, err := auth.New(cfg.Auth); err != nil {
					t.Fatalf("auth.New: %v", err)
				}
			}
			if _, err := cfg.Auth.CheckListen(cfg.Listen); err != nil {
				t.Fatalf("listen %s: %v", cfg.Listen, err)
			}
		})
	}
}

// TestExamplesLoadFindsMistakes makes sure the loading above can fail: an example with an unknown
// field, and one with a bad value, are refused.
func TestExamplesLoadFindsMistakes(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"unknown-field.yaml": "sources:\n  - name: demo\n    type: demo\n    rat: 10\n",
		"bad-value.yaml":     "sources:\n  - name: demo\n    type: demo\n    payload: fancy\n",
		"unknown-type.yaml":  "sources:\n  - name: x\n    type: carrier-pigeon\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path); err == nil {
			t.Errorf("config.Load(%s) accepted:\n%s", name, text)
		}
	}
}

// TestExamplesMatchDocs checks the documentation's copies of the examples: a ```yaml block whose
// first line is "# examples/NAME.yaml" must be that file, byte for byte; and every example is
// shown or named somewhere in README.md or docs/, so that none is left for no reader.
func TestExamplesMatchDocs(t *testing.T) {
	root := root(t)
	named := map[string]bool{}
	var all strings.Builder
	for _, f := range markdownFiles(t, root) {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		all.Write(raw)
		for _, b := range readDoc(t, filepath.Join(root, f)).yamlCode {
			first, _, _ := strings.Cut(b.text, "\n")
			m := regexp.MustCompile(`^# (examples/[\w.-]+\.yaml)\b`).FindStringSubmatch(first)
			if m == nil {
				continue
			}
			named[m[1]] = true
			want, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(m[1])))
			if err != nil {
				t.Errorf("%s:%d: the block is %s, which does not exist: %v", f, b.line, m[1], err)
				continue
			}
			if b.text != string(want) {
				t.Errorf("%s:%d: the block differs from %s; make them the same (the file is what the tests load)", f, b.line, m[1])
			}
		}
	}
	for _, path := range exampleFiles(t, root) {
		rel := "examples/" + filepath.Base(path)
		if !named[rel] && !strings.Contains(all.String(), rel) {
			t.Errorf("%s is neither shown nor named in README.md or docs/", rel)
		}
	}
	if !slices.Contains(keys(named), "examples/demo.yaml") {
		t.Errorf("found no doc block of examples/demo.yaml: the block reader is broken (%v)", keys(named))
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
