package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sourcetest"
)

// authSinkConfig is a server with two http sources and four keys: an admin that writes, a reader
// without the sinks right, and two with it, bounded to source in and, for "acme", to tenant acme.
func authSinkConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
sources: [{name: in, type: http}, {name: other, type: http}]
limits: {webhook_allow_private: true}
auth:
  api_keys:
    - {name: root, sha256: %q, admin: true, write: ["*"]}
    - {name: reader, sha256: %q, sources: [in]}
    - {name: acme, sha256: %q, sources: [in], where: 'body.tenant == "acme"', sinks: true}
    - {name: globex, sha256: %q, sinks: true}
  jwt: {hs256_secret: %q}
`, dir, auth.HashKey("root-key"), auth.HashKey("reader-key"), auth.HashKey("acme-key"), auth.HashKey("globex-key"), jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const jwtSecret = "a-secret-of-at-least-thirty-two-bytes"

// as sends a request with key as its bearer credential.
func as(t *testing.T, r *running, key, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if strings.HasSuffix(path, "/messages") {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// Only a credential with the sinks right (or admin) makes sinks; a sink reads only what its
// creator may read, through the creator's forced predicate; its creator sees and removes it,
// an admin every sink, another creator none of another's.
func TestSinkAuthorization(t *testing.T) {
	h := &hookReceiver{}
	hook := httptest.NewServer(h)
	defer hook.Close()
	dir := t.TempDir()
	r := start(t, authSinkConfig(t, dir))
	def := func(name, source string) string {
		src := ""
		if source != "" {
			src = fmt.Sprintf(`,"source":%q`, source)
		}
		return fmt.Sprintf(`{"name":%q,"type":"webhook","url":%q,"where":"body.n %% 2 == 0","batch":{"max":10,"wait":"5ms"}%s}`, name, hook.URL, src)
	}

	if code, body := as(t, r, "reader-key", "POST", "/v1/sinks", def("r", "in")); code != http.StatusForbidden || !strings.Contains(body, "sinks right") {
		t.Errorf("no sinks right: %d %s, want 403", code, body)
	}
	if code, body := as(t, r, "nobody", "POST", "/v1/sinks", def("r", "in")); code != http.StatusUnauthorized {
		t.Errorf("unknown key: %d %s, want 401", code, body)
	}
	if code, body := as(t, r, "acme-key", "POST", "/v1/sinks", def("x", "other")); code != http.StatusForbidden || !strings.Contains(body, `may not read source \"other\"`) {
		t.Errorf("a source outside the credential's: %d %s, want 403 naming it", code, body)
	}
	if code, body := as(t, r, "acme-key", "POST", "/v1/sinks", def("acme-even", "")); code != http.StatusCreated || body != `{"id":"acme-even"}` {
		t.Fatalf("sinks: true: %d %s, want 201", code, body)
	}
	if code, body := as(t, r, "globex-key", "POST", "/v1/sinks", def("globex-other", "other")); code != http.StatusCreated {
		t.Fatalf("globex: %d %s, want 201", code, body)
	}

	// Who sees what.
	list := func(key string) []string {
		t.Helper()
		code, body := as(t, r, key, "GET", "/v1/sinks", "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/sinks as %s: %d %s", key, code, body)
		}
		var sinks []struct{ Name, Owner string }
		if err := json.Unmarshal([]byte(body), &sinks); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range sinks {
			names = append(names, s.Name+"/"+s.Owner)
		}
		return names
	}
	if got := fmt.Sprint(list("acme-key")); got != "[acme-even/api_key:acme]" {
		t.Errorf("acme sees %s", got)
	}
	if got := fmt.Sprint(list("root-key")); got != "[acme-even/api_key:acme globex-other/api_key:globex]" {
		t.Errorf("the admin sees %s", got)
	}
	if code, _ := as(t, r, "reader-key", "GET", "/v1/sinks", ""); code != http.StatusForbidden {
		t.Errorf("GET /v1/sinks without the right: %d", code)
	}
	if code, _ := as(t, r, "globex-key", "GET", "/v1/sinks/acme-even", ""); code != http.StatusNotFound {
		t.Errorf("globex reads acme's sink: %d, want 404", code)
	}
	if code, _ := as(t, r, "globex-key", "DELETE", "/v1/sinks/acme-even", ""); code != http.StatusNotFound {
		t.Errorf("globex deletes acme's sink: %d, want 404", code)
	}

	// The forced predicate: acme's sink gets acme's even numbers only.
	var lines []string
	for i := range 40 {
		tenant := "acme"
		if i%4 >= 2 {
			tenant = "globex"
		}
		lines = append(lines, fmt.Sprintf(`{"n":%d,"tenant":%q}`, i, tenant))
	}
	code, body := as(t, r, "root-key", "POST", "/v1/sources/in/messages", strings.Join(lines, "\n")+"\n")
	if code != http.StatusOK {
		t.Fatalf("ingest: %d %s", code, body)
	}
	var want []int
	for i := 0; i < 40; i += 4 { // i%4 == 0: acme and even; i%4 == 2: globex
		want = append(want, i)
	}
	if !eventually(20*time.Second, func() bool { return len(h.numbers()) >= len(want) }) {
		_, b := as(t, r, "acme-key", "GET", "/v1/sinks", "")
		t.Fatalf("acme's sink delivered %v, want %v; it is %s", h.numbers(), want, b)
	}
	// Past every message: nothing more comes.
	sourcetest.Eventually(t, 10*time.Second, func() bool {
		_, body := as(t, r, "acme-key", "GET", "/v1/sinks/acme-even", "")
		return strings.Contains(body, `"position":"in:40"`)
	}, "the sink past in:40")
	if got := h.numbers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("acme's sink delivered %v, want %v (its credential's where ANDed in)", got, want)
	}

	// Started again, the sink keeps its creator's bounds.
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	r = start(t, authSinkConfig(t, dir))
	var more []string
	for i := 40; i < 48; i++ {
		more = append(more, fmt.Sprintf(`{"n":%d,"tenant":%q}`, i, map[bool]string{true: "acme", false: "globex"}[i < 44]))
	}
	if code, body := as(t, r, "root-key", "POST", "/v1/sources/in/messages", strings.Join(more, "\n")+"\n"); code != http.StatusOK {
		t.Fatalf("ingest: %d %s", code, body)
	}
	want = append(want, 40, 42)
	sourcetest.Eventually(t, 20*time.Second, func() bool {
		_, body := as(t, r, "acme-key", "GET", "/v1/sinks/acme-even", "")
		return strings.Contains(body, `"position":"in:48"`)
	}, "the sink past in:48 after a restart")
	if got := h.numbers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after a restart acme's sink delivered %v, want %v", got, want)
	}

	// A token with the sinks claim, bounded by its sources claim.
	tok, err := auth.IssueHS256([]byte(jwtSecret), auth.Claims{Subject: "svc", Sources: []string{"other"}, Sinks: true}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := as(t, r, tok, "POST", "/v1/sinks", def("svc-in", "in")); code != http.StatusForbidden {
		t.Errorf("a token naming a source outside its claim: %d %s", code, body)
	}
	if code, body := as(t, r, tok, "POST", "/v1/sinks", `{"name":"svc","type":"console"}`); code != http.StatusCreated {
		t.Errorf("a token with the sinks claim: %d %s", code, body)
	}
	if got := fmt.Sprint(list(tok)); got != "[svc/jwt:svc]" {
		t.Errorf("the token sees %s", got)
	}
	if code, _ := as(t, r, tok, "DELETE", "/v1/sinks/svc", ""); code != http.StatusNoContent {
		t.Errorf("the token deletes its sink: %d", code)
	}

	if code, _ := as(t, r, "acme-key", "DELETE", "/v1/sinks/acme-even", ""); code != http.StatusNoContent {
		t.Errorf("acme deletes its sink: %d", code)
	}
	if code, _ := as(t, r, "root-key", "DELETE", "/v1/sinks/globex-other", ""); code != http.StatusNoContent {
		t.Errorf("the admin deletes globex's sink: %d", code)
	}
	if got := list("root-key"); len(got) != 0 {
		t.Errorf("after both deletes: %v", got)
	}
}

// eventually reports whether cond holds within d, polling.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}
