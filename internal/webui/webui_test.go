package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/webui"
)

func get(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestServesPageAndAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(webui.Handler())
	defer srv.Close()

	cases := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `id="predicate"`},
		{"/index.html", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/app.js", "text/javascript; charset=utf-8", "new EventTable"},
		{"/api.js", "text/javascript; charset=utf-8", "Bearer"},
		{"/stream.js", "text/javascript; charset=utf-8", `from "./streamux.js"`},
		{"/streamux.js", "text/javascript; charset=utf-8", "export function subscribe("},
		{"/events.js", "text/javascript; charset=utf-8", "requestAnimationFrame"},
		{"/predicate.js", "text/javascript; charset=utf-8", "v1/check"},
		{"/format.js", "text/javascript; charset=utf-8", "export function"},
		{"/style.css", "text/css; charset=utf-8", "prefers-color-scheme"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		res, body := get(t, srv, http.MethodGet, c.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", c.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", c.path, got)
		}
		if res.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", c.path)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
		if !strings.Contains(body, c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
	}
}

// Every file the page refers to is served: a renamed module would otherwise break the page
// only in a browser.
func TestReferencedAssetsExist(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(webui.Handler())
	defer srv.Close()

	_, html := get(t, srv, http.MethodGet, "/", nil)
	refs := regexp.MustCompile(`(?:src|href)="([a-z0-9_.-]+\.(?:js|css|svg))"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 3 {
		t.Fatalf("found %d asset references in index.html, want at least 3", len(refs))
	}
	imports := regexp.MustCompile(`from "\./([a-z0-9_.-]+\.js)"`)
	for _, js := range []string{"app.js", "predicate.js", "events.js", "stream.js", "api.js"} {
		_, src := get(t, srv, http.MethodGet, "/"+js, nil)
		refs = append(refs, imports.FindAllStringSubmatch(src, -1)...)
	}
	for _, r := range refs {
		if res, _ := get(t, srv, http.MethodGet, "/"+r[1], nil); res.StatusCode != http.StatusOK {
			t.Errorf("GET /%s (referenced): status %d", r[1], res.StatusCode)
		}
	}
}

func TestPageDocumentsItsIDs(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(webui.Handler())
	defer srv.Close()

	_, html := get(t, srv, http.MethodGet, "/", nil)
	for _, id := range []string{
		"predicate", "check-status", "check-error", "sources", "start", "stop", "pause", "clear",
		"events", "rate", "count", "token", "transport", "subscriptions", "stream-status",
	} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("index.html has no element #%s", id)
		}
		if !strings.Contains(html, "#"+id+" ") {
			t.Errorf("the comment at the top of index.html does not list #%s", id)
		}
	}
}

func TestRevalidationAndErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(webui.Handler())
	defer srv.Close()

	res, _ := get(t, srv, http.MethodGet, "/app.js", nil)
	etag := res.Header.Get("ETag")
	res, body := get(t, srv, http.MethodGet, "/app.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("If-None-Match: status %d with %d bytes, want 304 and none", res.StatusCode, len(body))
	}

	res, body = get(t, srv, http.MethodHead, "/", nil)
	if res.StatusCode != http.StatusOK || body != "" || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /: status %d, %d bytes, type %q", res.StatusCode, len(body), res.Header.Get("Content-Type"))
	}

	for _, p := range []string{"/nope", "/static/app.js", "/../webui.go", "/v1/sources"} {
		if res, _ := get(t, srv, http.MethodGet, p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, res.StatusCode)
		}
	}
	if res, _ := get(t, srv, http.MethodPost, "/", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}

	res, _ = get(t, srv, http.MethodGet, "/", nil)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q", csp)
	}
}
