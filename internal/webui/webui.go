// Package webui is the web page served at GET /: write a predicate, pick sources, watch the
// matching events live. The page is plain HTML, CSS and JavaScript modules embedded in the binary,
// with no build step and nothing fetched from outside; its stream is kept by the JavaScript client
// (clients/js's streamux.js, served as /streamux.js). It speaks only the public HTTP API
// (/v1/check, /v1/sources, /v1/subscriptions, /v1/sinks, /v1/stream), with relative URLs, so it
// also works behind a reverse proxy that mounts streamux under a path prefix.
//
// Handler is safe for concurrent use: everything it serves is read once, at package
// initialisation, and never changes.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	streamuxjs "github.com/streamux/streamux/clients/js"
)

//go:embed static
var static embed.FS

// contentTypes is explicit rather than mime.TypeByExtension, whose answer depends on the host's
// mime.types files: a module script served with a non-JavaScript type is refused by browsers.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// csp allows the page only its own scripts, styles and API, including its WebSocket stream.
// Browsers before CSP Level 3 do not let 'self' cover ws: and wss:, hence those schemes.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// assets maps a request path ("/", "/app.js") to its file.
var assets = load()

// modTime is the same for every asset; ETags carry the real validation.
var modTime = time.Now()

func load() map[string]*asset {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	m := make(map[string]*asset)
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil // not meant to be served
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		a := newAsset(p, b, ctype)
		m["/"+p] = a
		if p == "index.html" {
			m["/"] = a
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	// The stream is kept by the JavaScript client itself, which lives in clients/js.
	m["/streamux.js"] = newAsset("streamux.js", streamuxjs.Module, contentTypes[".js"])
	return m
}

func newAsset(name string, body []byte, ctype string) *asset {
	sum := sha256.Sum256(body)
	return &asset{name: name, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// Handler serves the page at "/" and its assets beside it ("/app.js", "/style.css", …).
// Every response says "Cache-Control: no-cache" and carries an ETag, so a browser revalidates
// each time (a cheap 304) and sees a new version as soon as the binary is upgraded. Any other
// path is 404, and methods other than GET and HEAD are 405.
//
// Mount it at the root of the server's mux, as the fallback for paths no API route claims.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasSuffix(a.name, ".html") {
		h.Set("Content-Security-Policy", csp)
	}
	// ServeContent answers If-None-Match, Range and HEAD.
	http.ServeContent(w, r, a.name, modTime, bytes.NewReader(a.body))
}
