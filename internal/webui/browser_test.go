package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"
)

// The page's JavaScript is tested here in real headless Chromium against a fake of the API, so
// that it is tested whatever state the real server is in; the fake answers as API.md says.
// Tests of the page against the real server belong with the server.

// fakeAPI serves Handler() and a scripted /v1: two sources, a check endpoint that knows a few
// predicates, and a stream of one status event, one gap event and then messages "alpha:N"
// (key "even" or "odd", body {"n":N}) every 20 ms, only the even ones for `key == "even"`.
// The first stream for the predicate "flaky" ends after 5 messages; a stream with
// from=alpha:N starts at N+1.
type fakeAPI struct {
	token      string // when set, every /v1 call needs it (Bearer or ?token=)
	subsStatus int    // the status of GET /v1/subscriptions

	mu      sync.Mutex
	checks  []http.Header
	streams []*http.Request
	open    atomic.Int32 // streams open now
	flaky   atomic.Bool  // a "flaky" stream has been cut once
}

func (f *fakeAPI) server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("POST /v1/check", f.check)
	mux.HandleFunc("GET /v1/sources", f.sources)
	mux.HandleFunc("GET /v1/subscriptions", f.subscriptions)
	mux.HandleFunc("GET /v1/stream", f.stream)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string, pos int) {
	e := map[string]any{"code": code, "message": msg}
	if pos >= 0 {
		e["position"] = pos
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (f *fakeAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	if f.token == "" || r.Header.Get("Authorization") == "Bearer "+f.token || r.URL.Query().Get("token") == f.token {
		return true
	}
	apiError(w, http.StatusUnauthorized, "unauthorized", "a valid token is needed", -1)
	return false
}

func (f *fakeAPI) check(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.checks = append(f.checks, r.Header.Clone())
	f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	var req struct {
		Where  string   `json:"where"`
		Source []string `json:"source"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "invalid_request", err.Error(), -1)
		return
	}
	invalid := func(msg string, pos int) {
		writeJSON(w, http.StatusOK, map[string]any{"valid": false,
			"error": map[string]any{"code": "invalid_predicate", "message": msg, "position": pos}})
	}
	switch where := strings.TrimSpace(req.Where); {
	case strings.HasSuffix(where, "&&"):
		invalid("Syntax error: mismatched input '<EOF>'", utf8.RuneCountInString(req.Where))
	case strings.Contains(req.Where, "==="):
		// The third "=", counted in characters (runes) as the server counts them.
		invalid("Syntax error: token recognition error at: '= '",
			utf8.RuneCountInString(req.Where[:strings.Index(req.Where, "===")])+2)
	default:
		resp := map[string]any{"valid": true, "cost": map[string]int{"min": 1, "max": 2},
			"sources": map[string]any{"alpha": map[string]int{"matched": 5, "of": 10}}, "matched": 5, "of": 10}
		if where == `key == "even"` {
			resp["atoms"] = []any{map[string]any{"field": "key", "op": "==", "value": "even"}}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

func (f *fakeAPI) sources(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, []any{
		map[string]any{"name": "alpha", "type": "demo", "state": "up",
			"counters": map[string]int{"received": 1234, "matched": 56, "dropped": 0}},
		map[string]any{"name": "beta", "type": "amqp", "state": "reconnecting", "last_error": "connection refused",
			"counters": map[string]int{"received": 0}},
	})
}

func (f *fakeAPI) subscriptions(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if f.subsStatus != http.StatusOK {
		apiError(w, f.subsStatus, "forbidden", "admins only", -1)
		return
	}
	writeJSON(w, http.StatusOK, []any{map[string]any{
		"id": 7, "predicate": `key == "even"`, "sources": []string{"alpha"}, "transport": "sse",
		"remote": "127.0.0.1:5555", "policy": "disconnect", "started": time.Now().Add(-time.Minute).Format(time.RFC3339),
		"counters": map[string]int{"matched": 10, "delivered": 9, "dropped": 1, "predicate_errors": 0, "queue_depth": 1},
	}})
}

var upgrader = websocket.Upgrader{}

func (f *fakeAPI) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.streams = append(f.streams, r)
	f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	where := r.URL.Query().Get("where")
	if where == "boom" {
		apiError(w, http.StatusBadRequest, "invalid_predicate", "boom is not a predicate", 0)
		return
	}
	f.open.Add(1)
	defer f.open.Add(-1)

	var send func(typ, id string, data []byte) error
	ctx := r.Context()
	if websocket.IsWebSocketUpgrade(r) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = cctx
		// The reader notices the client leaving; the handler waits for it through ctx.
		go func() {
			defer cancel()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		send = func(_, _ string, data []byte) error { return c.WriteMessage(websocket.TextMessage, data) }
	} else {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_, _ = fmt.Fprint(w, ": hello\n\n")
		_ = rc.Flush()
		send = func(typ, id string, data []byte) error {
			if id != "" {
				fmt.Fprintf(w, "id: %s\n", id)
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
			return rc.Flush()
		}
	}
	if send("status", "", []byte(`{"type":"status","source":"beta","state":"reconnecting","error":"connection refused"}`)) != nil ||
		send("gap", "", []byte(`{"type":"gap","source":"alpha","missed":17}`)) != nil {
		return
	}
	start, cut := 1, 0
	if id := r.URL.Query().Get("from"); strings.HasPrefix(id, "alpha:") {
		_, _ = fmt.Sscanf(id, "alpha:%d", &start)
		start++
	}
	if where == "flaky" && f.flaky.CompareAndSwap(false, true) {
		cut = 5
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := start; cut == 0 || n <= cut; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		key := "odd"
		if n%2 == 0 {
			key = "even"
		}
		if where == `key == "even"` && key != "even" {
			continue
		}
		ev := fmt.Sprintf(`{"type":"message","id":"alpha:%d","source":"alpha","seq":%d,"key":%q,"time":%q,"headers":{},"body":{"n":%d}}`,
			n, n, key, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), n)
		if send("message", fmt.Sprintf("alpha:%d", n), []byte(ev)) != nil {
			return
		}
	}
}

// browser starts headless Chromium for the test, or skips the test when there is none.
func browser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	path := os.Getenv("STREAMUX_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		t.Skip("no Chromium found (install Debian's chromium, or set STREAMUX_CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so that the console is followed from the first page on.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// Any uncaught exception in the page fails the test.
	var mu sync.Mutex
	var exceptions []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() {
				mu.Lock()
				exceptions = append(exceptions, m.Text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return ctx
}

type css = chromedp.CSS

func do(t *testing.T, ctx context.Context, what string, acts ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, acts...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, id))
}

// waitFor polls a JavaScript condition.
func waitFor(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
}

// setPredicate replaces the editor's text the way typing does (an input event).
func setPredicate(where string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(where)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById("predicate");
		e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); })()`, js))
}

func selectTransport(v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById("transport");
		e.value = %q; e.dispatchEvent(new Event("change", {bubbles: true})); })()`, v))
}

const messageRows = `document.querySelectorAll("#events tbody tr.ev-message").length`

func TestBrowserPage(t *testing.T) {
	ctx := browser(t)
	f := &fakeAPI{subsStatus: http.StatusOK}
	srv := f.server(t)

	do(t, ctx, "load", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(css(`#sources input[value="alpha"]`)),
		waitFor(`document.querySelector('#sources label[data-source="beta"] .dot').dataset.state === "reconnecting"`),
		waitFor(`document.querySelector('#source-table tr[data-source="beta"]') !== null`),
		chromedp.WaitVisible(css(`#subscription-table tr[data-id="7"]`)))
	if got := text(t, ctx, `#source-table tr[data-source="beta"]`); !strings.Contains(got, "connection refused") {
		t.Errorf("source panel row of beta = %q, want its last error", got)
	}

	t.Run("invalid predicate is marked where the error is", func(t *testing.T) {
		do(t, ctx, "type", chromedp.Click(css("#predicate")), chromedp.SendKeys(css("#predicate"), `key == "even" &&`),
			chromedp.WaitVisible(css(`#check-status[data-state="invalid"]`)))
		if got := text(t, ctx, "#check-error"); !strings.Contains(got, "Line 1, column 17") || !strings.Contains(got, "mismatched input") {
			t.Errorf("#check-error = %q, want the message at line 1, column 17", got)
		}
		// After a character outside the BMP (two UTF-16 units, one character for the server),
		// the mark must still fall on the right character.
		do(t, ctx, "set", setPredicate(`"😀" === key`), waitFor(`document.querySelector("#predicate-mirror mark.error-mark") !== null`))
		mirror := eval[[]string](t, ctx, `(() => { const m = document.querySelector("#predicate-mirror");
			return [m.firstChild.textContent, m.querySelector("mark").textContent]; })()`)
		if mirror[1] != "=" || mirror[0] != `"😀" ==` {
			t.Errorf("mark after %q on %q, want after %q on %q", mirror[0], mirror[1], `"😀" ==`, "=")
		}
		if got := eval[string](t, ctx, `document.getElementById("predicate").getAttribute("aria-invalid")`); got != "true" {
			t.Errorf("#predicate aria-invalid = %q, want true", got)
		}
		do(t, ctx, "start refused", chromedp.Click(css("#start")), chromedp.WaitVisible(css(`#stream-status[data-state="error"]`)))
		f.mu.Lock()
		n := len(f.streams)
		f.mu.Unlock()
		if n != 0 {
			t.Errorf("%d streams opened for an invalid predicate", n)
		}
	})

	t.Run("valid predicate shows cost, matches and atoms", func(t *testing.T) {
		do(t, ctx, "set", setPredicate(`key == "even"`), chromedp.WaitVisible(css(`#check-status[data-state="valid"]`)),
			chromedp.WaitVisible(css(`#atoms code.atom`)))
		if got := text(t, ctx, "#check-details"); !strings.Contains(got, "Cost 1–2") || !strings.Contains(got, "Matches 5 of the last 10") {
			t.Errorf("#check-details = %q", got)
		}
		if got := text(t, ctx, "#atoms"); !strings.Contains(got, `key == "even"`) {
			t.Errorf("#atoms = %q", got)
		}
		if got := eval[bool](t, ctx, `document.getElementById("check-error").hidden`); !got {
			t.Error("#check-error still shown for a valid predicate")
		}
	})

	t.Run("stream shows matching messages, gaps and status", func(t *testing.T) {
		do(t, ctx, "start", chromedp.Click(css(`#sources input[value="alpha"]`)), chromedp.Click(css("#start")),
			chromedp.WaitVisible(css(`#stream-status[data-state="live"]`)), waitFor(messageRows+" >= 5"),
			chromedp.WaitVisible(css(`#events tbody tr.ev-gap`)), chromedp.WaitVisible(css(`#events tbody tr.ev-status`)))
		keys := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-message")].map(r => r.dataset.key)`)
		for _, k := range keys {
			if k != "even" {
				t.Fatalf("a row with key %q for key == \"even\"", k)
			}
		}
		if got := text(t, ctx, "#events tbody tr.ev-gap"); !strings.Contains(got, "17") {
			t.Errorf("gap row = %q, want the 17 missed", got)
		}
		if got := text(t, ctx, "#events tbody tr.ev-status"); !strings.Contains(got, "reconnecting") || !strings.Contains(got, "connection refused") {
			t.Errorf("status row = %q", got)
		}
		f.mu.Lock()
		q := f.streams[len(f.streams)-1].URL.Query()
		f.mu.Unlock()
		if q.Get("where") != `key == "even"` || strings.Join(q["source"], ",") != "alpha" || q.Has("token") {
			t.Errorf("stream query = %v, want where, source=alpha and no token", q)
		}
		do(t, ctx, "expand", chromedp.Click(css(`#events tbody tr.ev-message td.body`)), chromedp.WaitVisible(css(`#events tbody tr.detail pre`)))
		if got := text(t, ctx, "#events tbody tr.detail pre"); !strings.Contains(got, `"key": "even"`) || !strings.Contains(got, `"n":`) {
			t.Errorf("expanded JSON = %q", got)
		}
	})

	t.Run("pause keeps counting but freezes the table", func(t *testing.T) {
		do(t, ctx, "pause", chromedp.Click(css("#pause")), chromedp.WaitVisible(css("#paused-info")), chromedp.Sleep(150*time.Millisecond))
		rows, count := eval[int](t, ctx, messageRows), text(t, ctx, "#count")
		do(t, ctx, "wait", waitFor(fmt.Sprintf(`document.getElementById("count").textContent !== %q`, count)))
		if got := eval[int](t, ctx, messageRows); got != rows {
			t.Errorf("rows went from %d to %d while paused", rows, got)
		}
		if got := eval[string](t, ctx, `document.getElementById("pause").getAttribute("aria-pressed")`); got != "true" {
			t.Errorf("#pause aria-pressed = %q while paused", got)
		}

		// The rows are one tab stop: Tab from Clear lands on the newest row, the arrows move.
		do(t, ctx, "tab into the table", chromedp.Focus(css("#clear")), chromedp.KeyEvent(kb.Tab))
		first := `document.querySelector("#events tbody tr.ev-message")`
		if !eval[bool](t, ctx, `document.activeElement === `+first+`.querySelector("button.toggle")`) {
			t.Fatalf("Tab from #clear focused %s, want the newest row's button", eval[string](t, ctx, `document.activeElement.outerHTML.slice(0, 120)`))
		}
		do(t, ctx, "arrow down", chromedp.KeyEvent(kb.ArrowDown))
		if got := eval[string](t, ctx, `document.activeElement.closest("tr")?.dataset.id ?? ""`); got == "" || got == eval[string](t, ctx, first+`.dataset.id`) {
			t.Errorf("ArrowDown moved focus to row %q, want the next row", got)
		}
		do(t, ctx, "enter expands", chromedp.KeyEvent("\r"), waitFor(`document.activeElement.closest("tr").nextElementSibling?.classList.contains("detail")`))
		if got := eval[string](t, ctx, `document.activeElement.getAttribute("aria-expanded")`); got != "true" {
			t.Errorf("aria-expanded = %q after Enter", got)
		}
		do(t, ctx, "resume", chromedp.Click(css("#pause")), waitFor(fmt.Sprintf("%s > %d", messageRows, rows)))
	})

	t.Run("clear and stop", func(t *testing.T) {
		do(t, ctx, "clear", chromedp.Click(css("#clear")),
			chromedp.Click(css("#stop")), chromedp.WaitVisible(css(`#stream-status[data-state="stopped"]`)),
			chromedp.Click(css("#clear")))
		if got := eval[int](t, ctx, `document.querySelectorAll("#events tbody tr").length`); got != 0 {
			t.Errorf("%d rows after Clear", got)
		}
		if got := text(t, ctx, "#count"); got != "0" {
			t.Errorf("#count = %q after Clear", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for f.open.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := f.open.Load(); n != 0 {
			t.Errorf("%d streams still open after Stop", n)
		}
	})

	t.Run("a stream the server refuses shows why", func(t *testing.T) {
		do(t, ctx, "start", setPredicate("boom"), chromedp.WaitVisible(css(`#check-status[data-state="valid"]`)),
			chromedp.Click(css("#start")), chromedp.WaitVisible(css(`#stream-status[data-state="error"]`)))
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, "boom is not a predicate") {
			t.Errorf("#stream-status = %q, want the server's message", got)
		}
		if eval[bool](t, ctx, `document.getElementById("stop").disabled`) != true {
			t.Error("#stop enabled after the stream was refused")
		}
	})

	t.Run("websocket", func(t *testing.T) {
		do(t, ctx, "start", selectTransport("ws"), setPredicate(""), chromedp.WaitVisible(css(`#check-status[data-state="valid"]`)),
			chromedp.Click(css("#start")), chromedp.WaitVisible(css(`#stream-status[data-state="live"]`)),
			waitFor(messageRows+" >= 6"))
		keys := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-message")].map(r => r.dataset.key)`)
		if !strings.Contains(strings.Join(keys, ","), "odd") {
			t.Errorf("keys %v: want odd ones too with no predicate", keys)
		}
		f.mu.Lock()
		last := f.streams[len(f.streams)-1]
		f.mu.Unlock()
		if !websocket.IsWebSocketUpgrade(last) {
			t.Error("the last stream was not a WebSocket")
		}
		do(t, ctx, "stop", chromedp.Click(css("#stop")), chromedp.WaitVisible(css(`#stream-status[data-state="stopped"]`)))
	})

	t.Run("a broken stream is resumed where it broke", func(t *testing.T) {
		do(t, ctx, "start", selectTransport("sse"), setPredicate("flaky"), chromedp.WaitVisible(css(`#check-status[data-state="valid"]`)),
			chromedp.Click(css("#start")),
			waitFor(`[...document.querySelectorAll("#events tbody tr.ev-local")].some(r => r.textContent.includes("reconnected, resuming after alpha:5"))`),
			waitFor(`document.querySelector('#events tbody tr[data-id="alpha:6"]') !== null`),
			chromedp.WaitVisible(css(`#stream-status[data-state="live"]`)))
		f.mu.Lock()
		q := f.streams[len(f.streams)-1].URL.Query()
		f.mu.Unlock()
		if q.Get("from") != "alpha:5" {
			t.Errorf("the reconnect asked from=%q, want alpha:5", q.Get("from"))
		}
		ids := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-message")].map(r => r.dataset.id)`)
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("event %s shown twice", id)
			}
			seen[id] = true
		}
		do(t, ctx, "stop", chromedp.Click(css("#stop")))
	})
}

func TestBrowserPageWithToken(t *testing.T) {
	ctx := browser(t)
	f := &fakeAPI{token: "s3cret", subsStatus: http.StatusForbidden}
	srv := f.server(t)

	do(t, ctx, "load", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(css("#auth-hint")), chromedp.WaitVisible(css("#sources-error")))
	do(t, ctx, "token", chromedp.SendKeys(css("#token"), "s3cret"),
		chromedp.WaitVisible(css(`#sources input[value="alpha"]`)), chromedp.WaitNotVisible(css("#auth-hint")))
	if got := eval[string](t, ctx, `sessionStorage.getItem("streamux.token")`); got != "s3cret" {
		t.Errorf("sessionStorage token = %q", got)
	}
	if !eval[bool](t, ctx, `document.getElementById("subscriptions").hidden`) {
		t.Error("#subscriptions shown although the server answers 403")
	}
	do(t, ctx, "check", setPredicate(`key == "even"`), chromedp.WaitVisible(css(`#check-status[data-state="valid"]`)))
	f.mu.Lock()
	auth := f.checks[len(f.checks)-1].Get("Authorization")
	f.mu.Unlock()
	if auth != "Bearer s3cret" {
		t.Errorf("check sent Authorization %q", auth)
	}
	do(t, ctx, "stream", chromedp.Click(css("#start")), chromedp.WaitVisible(css(`#stream-status[data-state="live"]`)), waitFor(messageRows+" >= 2"))
	f.mu.Lock()
	q := f.streams[len(f.streams)-1].URL.Query()
	f.mu.Unlock()
	if q.Get("token") != "s3cret" {
		t.Errorf("stream URL token = %q", q.Get("token"))
	}
	do(t, ctx, "stop", chromedp.Click(css("#stop")))
}
