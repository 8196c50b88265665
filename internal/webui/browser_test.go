package webui_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/streamux/streamux/internal/browsertest"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/sink/webhook"
	"github.com/streamux/streamux/internal/supervisor"
)

// The page is tested here in real headless Chromium against the real streamux server (the
// supervisor, its routers and sources and the HTTP API, in process, on loopback; see
// server_test.go). The test publishes chosen messages to an http source, ends subscriptions,
// restarts the server and drops a websocket source's upstream, and looks at what the page shows.
// Pure functions of the page's modules are checked in the same browser, with no server needed.

var screenshot = flag.String("screenshot", "", "TestScreenshot writes a 1280x800 PNG of the page with live events here")

// browser starts headless Chromium for the test. Without one the test is skipped, unless CI=true:
// there, a missing browser is a failure rather than a silently untested page.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := browsertest.Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Start the browser now, so that the console is followed from the first page on.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	// Any uncaught exception in the page fails the test.
	var mu sync.Mutex
	var exceptions []string
	followed := make(chan struct{})
	go func() { // waited for in the cleanup, after the tab is closed
		defer close(followed)
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
		cancelTab()
		cancelAlloc()
		<-followed
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
		t.Fatalf("%s: %v\n%s", what, err, pageState(ctx))
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? %q`, sel, "(nothing matches "+sel+")"))
}

// wait polls a JavaScript condition in the page until it holds; on a timeout it fails the test
// and shows what the page showed.
func wait(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := chromedp.Do(tctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for %s: %v\n%s", what, err, pageState(ctx))
	}
}

// pageState describes the page for a failure message.
func pageState(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(qctx, chromedp.Evaluate[string](`[
		"check: " + document.getElementById("check-status").textContent.trim(),
		"check error: " + document.getElementById("check-error").textContent.replace(/\s+/g, " ").trim(),
		"stream: " + document.getElementById("stream-status").dataset.state + ": " + document.getElementById("stream-status").textContent,
		"count " + document.getElementById("count").textContent + ", missed " + document.getElementById("gaps").textContent,
		"rows (newest first):",
		...[...document.querySelectorAll("#events tbody tr.ev")].slice(0, 25).map(r => "  " + r.textContent.replace(/\s+/g, " ").trim()),
	].join("\n")`))
	if err != nil {
		return fmt.Sprintf("(page state unknown: %v)", err)
	}
	return "the page shows:\n" + s
}

// setPredicate replaces the editor's text the way typing does (an input event).
func setPredicate(where string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(where)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById("predicate");
		e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); })()`, js))
}

// typePredicate empties the editor and types where, key by key.
func typePredicate(where string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(setPredicate(""), chromedp.Click(css("#predicate")), chromedp.SendKeys(css("#predicate"), where))
}

// setValue sets an input's value the way typing does (an input event).
func setValue(id, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById(%q);
		e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})); })()`, id, v))
}

func choose(id, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.getElementById(%q);
		e.value = %q; e.dispatchEvent(new Event("change", {bubbles: true})); })()`, id, v))
}

// pickSources ticks exactly the named sources in the picker.
func pickSources(names ...string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(append([]string{}, names...))
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const want = %s;
		for (const b of document.querySelectorAll('#sources input[name="source"]')) {
			if (b.checked !== want.includes(b.value)) { b.checked = !b.checked; b.dispatchEvent(new Event("change", {bubbles: true})); }
		} })()`, js))
}

// waitValid waits until the check of exactly this predicate says it is valid.
func waitValid(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	js, _ := json.Marshal(where)
	wait(t, ctx, "a valid predicate "+where, fmt.Sprintf(`document.getElementById("predicate").value === %s &&
		document.getElementById("check-status").dataset.state === "valid"`, js))
}

// start presses Start and waits until the stream is live.
func start(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, "start", chromedp.Click(css("#start")))
	wait(t, ctx, "a live stream", `document.getElementById("stream-status").dataset.state === "live"`)
}

func stop(t *testing.T, ctx context.Context, s *server) {
	t.Helper()
	do(t, ctx, "stop", chromedp.Click(css("#stop")))
	wait(t, ctx, "a stopped stream", `document.getElementById("stream-status").dataset.state === "stopped"`)
	waitUntil(t, "no subscription after Stop", func() bool { return s.sup.Count() == 0 })
}

// rowsJS lists the table's rows, newest first: a message row as its id, a gap row as
// "gap:REASON", a status row as "status", a row about the page's own connection as "local".
const rowsJS = `[...document.querySelectorAll("#events tbody tr.ev")].map(r =>
	r.classList.contains("ev-message") ? r.dataset.id :
	r.classList.contains("ev-gap") ? "gap:" + (r.dataset.reason ?? "") :
	r.classList.contains("ev-status") ? "status" :
	r.classList.contains("ev-local") ? "local" : "other")`

// waitRows waits until the table holds exactly want, newest first (see rowsJS). Every message
// of alpha is published in order, so once the newest wanted row is shown, anything published
// before it that was going to be shown is too: equality then is final, not a moment's luck.
func waitRows(t *testing.T, ctx context.Context, what string, want ...string) {
	t.Helper()
	js, _ := json.Marshal(append([]string{}, want...))
	wait(t, ctx, what+": rows "+string(js), fmt.Sprintf(`JSON.stringify(%s) === %q`, rowsJS, js))
}

// newestFirst reverses ids, in the table's order.
func newestFirst(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// meter reads one of the page's figures (#count, #gaps).
func meter(t *testing.T, ctx context.Context, id string) int {
	t.Helper()
	s := strings.ReplaceAll(text(t, ctx, "#"+id), ",", "")
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("#%s = %q: %v", id, s, err)
	}
	return n
}

func TestBrowserPage(t *testing.T) {
	ctx := browser(t)
	top := t
	// Each step builds on the page and server the ones before it leave: stop at the first
	// that fails, rather than time out in each of the rest.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	rec := &recorder{}
	// A websocket source "feed" reads a real upstream, which the test can make drop it.
	feed := startUpstream(t)
	// Five messages of history per source, so that a short absence outlives it; alpha holds
	// n = 1..4 before the page opens.
	// A webhook sink of alpha, to a receiver that takes everything: a row of the sinks panel.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	opts := serverOptions{history: 5, demo: "demo", demoRate: 20, feed: feed, rec: rec, before: alternate(1, 4),
		sinks: []config.Sink{{Name: "hook", Type: "webhook", Sources: config.Names{"alpha"}, Spec: &webhook.Config{URL: hook.URL}}}}
	s := startServer(t, opts)

	do(t, ctx, "load", chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(css(`#sources input[value="alpha"]`)),
		chromedp.WaitVisible(css(`#sources input[value="demo"]`)),
		chromedp.WaitVisible(css(`#source-table tr[data-source="demo"]`)),
		chromedp.WaitVisible(css(`#subscriptions`)))
	wait(t, ctx, "alpha shown up, as an http source", `document.querySelector('#sources label[data-source="alpha"] .dot').dataset.state === "up" &&
		document.querySelector('#sources label[data-source="alpha"] .meta').textContent === "http · up"`)
	if got := text(t, ctx, `#source-table tr[data-source="alpha"]`); !strings.Contains(got, "alpha") || !strings.Contains(got, "http") || !strings.Contains(got, "up") {
		t.Errorf("source panel row of alpha = %q", got)
	}
	wait(t, ctx, "the sinks panel", `!document.getElementById("sinks").hidden &&
		document.querySelector('#sink-table tr[data-sink="hook"]')?.textContent.includes("webhook") &&
		document.querySelector('#sink-table tr[data-sink="hook"] .dot')?.dataset.state === "up"`)
	if !eval[bool](t, ctx, `document.getElementById("auth-hint").hidden && document.getElementById("sources-error").hidden`) {
		t.Error("the page asks for a token from a server without auth")
	}

	step("pure helpers", func(t *testing.T) {
		// format.js and events.js's describe need no server; their edge cases are checked here.
		failures := eval[[]string](t, ctx, `(async () => {
			const f = await import("./format.js");
			const e = await import("./events.js");
			const out = [];
			const eq = (what, got, want) => {
				if (JSON.stringify(got) !== JSON.stringify(want)) out.push(what + ": got " + JSON.stringify(got) + ", want " + JSON.stringify(want));
			};
			eq("utf16Index after an emoji", f.utf16Index('"😀" === key', 6), 7);
			eq("utf16Index past the end", f.utf16Index("ab", 9), 2);
			eq("utf16Index of 0", f.utf16Index("ab", 0), 0);
			eq("lineColumn", f.lineColumn("a\n😀b", 5), {line: 2, column: 3});
			eq("caretSnippet", f.caretSnippet("x\n\tab", 4), "\tab\n\t ^");
			eq("compactJSON cut", f.compactJSON({a: "0123456789"}, 10), '{"a":"012…');
			eq("costText range", f.costText({min: 1, max: 2500}), "1–2,500");
			eq("costText one", f.costText({min: 3, max: 3}), "3");
			eq("atomText", f.atomText({field: "key", op: "in", values: ["a", "b"]}), 'key in ["a","b"]');
			eq("count", f.count(undefined), "–");
			eq("gap dropped", e.describe({type: "gap", source: "a", missed: 17, reason: "dropped"}),
				"gap: 17 missed: slow consumer: the server dropped them while this page read too slowly");
			eq("gap history", e.describe({type: "gap", source: "a", missed: 1, reason: "history"}),
				"gap: 1 missed: the server's history no longer holds them");
			eq("gap too_large", e.describe({type: "gap", source: "a", missed: 1, reason: "too_large"}),
				"gap: 1 missed: the source received them but they were too large to pass on (they may not have matched)");
			eq("gap restart", e.describe({type: "gap", source: "a", missed: 65530, reason: "restart"}),
				"gap: 65,530 missed: the server restarted, and its history went with it (at most this many)");
			eq("gap unknown_id", e.describe({type: "gap", source: "a", missed: 1234, reason: "unknown_id"}),
				"gap: server restarted: position unknown; at least 1,234 missed");
			eq("gap unknown_id of none", e.describe({type: "gap", source: "a", missed: 0, reason: "unknown_id"}),
				"gap: server restarted: position unknown; messages sent before the restart may be missed");
			eq("gap without a reason", e.describe({type: "gap", source: "a", missed: 1}), "gap: 1 matching message not delivered");
			eq("gap with a new reason", e.describe({type: "gap", source: "a", missed: 2, reason: "later"}), "gap: 2 matching messages not delivered");
			eq("status", e.describe({type: "status", source: "a", state: "reconnecting", error: "refused"}), "source is reconnecting: refused");
			return out;
		})()`)
		for _, f := range failures {
			t.Error(f)
		}
	})

	step("an invalid predicate is marked where the server says", func(t *testing.T) {
		// Typed key by key: the page checks as the user types, and only the last answer counts.
		do(t, ctx, "type", typePredicate(`key == "even" &&`))
		wait(t, ctx, "the error at the end", `document.getElementById("check-status").dataset.state === "invalid" &&
			document.getElementById("check-error-pos").textContent === "Line 1, column 17"`)
		if got := text(t, ctx, "#check-error-message"); !strings.Contains(got, "ends where a value was expected") {
			t.Errorf("#check-error-message = %q, want the server's syntax error", got)
		}
		mark := eval[[]string](t, ctx, `(() => { const m = document.querySelector("#predicate-mirror");
			return [m.firstChild.textContent, m.querySelector("mark.error-mark").textContent]; })()`)
		if mark[0] != `key == "even" &&` || mark[1] != " " {
			t.Errorf("mark after %q on %q, want it after the whole text", mark[0], mark[1])
		}

		// The server counts characters; after one outside the BMP (two UTF-16 units), the mark
		// must still fall on the character the server means.
		do(t, ctx, "set", setPredicate(`"😀" === key`))
		wait(t, ctx, "the error on the third =", `document.getElementById("check-status").dataset.state === "invalid" &&
			document.querySelector("#predicate-mirror mark.error-mark") !== null`)
		mark = eval[[]string](t, ctx, `(() => { const m = document.querySelector("#predicate-mirror");
			return [m.firstChild.textContent, m.querySelector("mark").textContent, document.getElementById("check-error-pos").textContent]; })()`)
		if mark[0] != `"😀" ==` || mark[1] != "=" || mark[2] != "Line 1, column 7" {
			t.Errorf("mark after %q on %q at %q, want after %q on %q at Line 1, column 7", mark[0], mark[1], mark[2], `"😀" ==`, "=")
		}
		if got := eval[string](t, ctx, `document.getElementById("predicate").getAttribute("aria-invalid")`); got != "true" {
			t.Errorf("#predicate aria-invalid = %q, want true", got)
		}

		do(t, ctx, "start refused", chromedp.Click(css("#start")))
		wait(t, ctx, "Start refused", `document.getElementById("stream-status").dataset.state === "error"`)
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, "invalid") {
			t.Errorf("#stream-status = %q", got)
		}
		if reqs, _ := rec.since(0); len(streams(reqs)) != 0 || s.sup.Count() != 0 {
			t.Errorf("%d stream requests, %d subscriptions for an invalid predicate", len(streams(reqs)), s.sup.Count())
		}
	})

	step("a predicate that compiles but cannot work on the history says so", func(t *testing.T) {
		// No source picked: every source's history is checked, alpha's n = 1..4 among them.
		do(t, ctx, "set", setPredicate(`body.n > "x"`))
		wait(t, ctx, "failing on the history", `document.getElementById("check-status").dataset.state === "warning" &&
			document.getElementById("check-status").textContent.includes("Compiles, but fails on every one of the last") &&
			document.querySelector("#check-warnings:not([hidden]) li.first-error")?.textContent.includes("no such overload")`)
		do(t, ctx, "set", setPredicate(`body.n == "3"`))
		wait(t, ctx, "the always-false comparison", `document.getElementById("check-status").dataset.state === "warning" &&
			document.querySelector("#check-warnings:not([hidden]) li.warning")?.textContent.startsWith("Line 1, column 1: body.n is a number in ") &&
			document.querySelector("#check-warnings li.warning").textContent.endsWith("did you mean body.n == 3?")`)
		do(t, ctx, "set", setPredicate(`body.n == 3`))
		waitValid(t, ctx, `body.n == 3`)
		if !eval[bool](t, ctx, `document.getElementById("check-warnings").hidden`) {
			t.Error("the warnings stay shown for a predicate that works")
		}
	})

	const where = `key == "even" && body.n > 2`
	step("a valid predicate shows its cost and what it matches in the history", func(t *testing.T) {
		do(t, ctx, "type", typePredicate(where), chromedp.Click(css(`#sources input[value="alpha"]`)))
		waitValid(t, ctx, where)
		// alpha holds n = 1..4: only 4 is even and over 2.
		wait(t, ctx, "the matches in alpha's history", `document.getElementById("check-details").textContent.includes("Matches 1 of the last 4 messages")`)
		if got := text(t, ctx, "#check-details"); !strings.Contains(got, "Cost ") {
			t.Errorf("#check-details = %q, want the cost", got)
		}
		if !eval[bool](t, ctx, `document.getElementById("check-error").hidden && document.getElementById("predicate").getAttribute("aria-invalid") === null`) {
			t.Error("the error is still shown for a valid predicate")
		}
		// The index files it under its one equality test.
		if got := eval[[]string](t, ctx, `[...document.querySelectorAll("#atoms:not([hidden]) code.atom")].map(c => c.textContent)`); len(got) != 1 || got[0] != `key == "even"` {
			t.Errorf("#atoms shows %q, want key == \"even\"", got)
		}
	})

	// The matching ids seen so far, oldest first.
	var shown []string
	step("exactly the matching messages arrive over SSE", func(t *testing.T) {
		start(t, ctx)
		sub := s.subscription(t)
		if sub.Predicate != where || strings.Join(sub.Sources, ",") != "alpha" || sub.Transport != "sse" || sub.Policy != "disconnect" {
			t.Errorf("subscription %+v, want the predicate, alpha only, sse and disconnect", sub)
		}
		ids := s.publish(t,
			m("odd", `{"n":5}`), m("even", `{"n":6}`), m("odd", `{"n":7}`), m("even", `{"n":8}`),
			m("even", `{"n":2}`),   // not over 2
			m("odd", `{"n":100}`),  // odd
			m("even", `{"n":"7"}`), // a string: the predicate fails on it, so no match
			m("even", `{"m":1}`),   // no n: likewise
			m("even", `{"n":2.5}`), // a double over the int 2
			m("even", `{"n":10}`),
		)
		shown = []string{ids[1], ids[3], ids[8], ids[9]}
		// alpha:4 matched before Start and demo's messages would match too: neither is shown.
		waitRows(t, ctx, "the matching messages", newestFirst(shown...)...)
		wait(t, ctx, "the count", `document.getElementById("count").textContent === "4"`)
		if got := s.subscription(t).Counters.EvalErrors; got != 2 {
			t.Errorf("the server counted %d predicate failures, want 2", got)
		}

		do(t, ctx, "expand", chromedp.Click(css(fmt.Sprintf(`#events tbody tr[data-id=%q] td.body`, ids[8]))),
			chromedp.WaitVisible(css(`#events tbody tr.detail pre`)))
		var ev map[string]any
		if err := json.Unmarshal([]byte(text(t, ctx, "#events tbody tr.detail pre")), &ev); err != nil {
			t.Fatalf("expanded JSON: %v", err)
		}
		if ev["id"] != ids[8] || ev["key"] != "even" || ev["source"] != "alpha" || fmt.Sprint(ev["body"]) != "map[n:2.5]" || ev["time"] == nil {
			t.Errorf("expanded JSON = %v", ev)
		}
		do(t, ctx, "collapse", chromedp.Click(css(fmt.Sprintf(`#events tbody tr[data-id=%q] td.body`, ids[8]))))
	})

	step("pause keeps counting but freezes the table; resume shows what came", func(t *testing.T) {
		do(t, ctx, "pause", chromedp.Click(css("#pause")), chromedp.WaitVisible(css("#paused-info")))
		if got := eval[string](t, ctx, `document.getElementById("pause").getAttribute("aria-pressed")`); got != "true" {
			t.Errorf("#pause aria-pressed = %q while paused", got)
		}
		ids := s.publish(t, m("even", `{"n":20}`), m("odd", `{"n":21}`), m("even", `{"n":22}`), m("even", `{"n":24}`))
		wait(t, ctx, "the count to go on", `document.getElementById("count").textContent === "7" &&
			document.getElementById("paused-info").textContent.includes("(3 since pausing)")`)
		waitRows(t, ctx, "the table frozen", newestFirst(shown...)...)

		// The rows are one tab stop: Tab from Clear lands on the newest row, the arrows move.
		do(t, ctx, "tab into the table", chromedp.Focus(css("#clear")), chromedp.KeyEvent(kb.Tab))
		newest := `document.querySelector("#events tbody tr.ev-message")`
		if !eval[bool](t, ctx, `document.activeElement === `+newest+`.querySelector("button.toggle")`) {
			t.Fatalf("Tab from #clear focused %s, want the newest row's button", eval[string](t, ctx, `document.activeElement.outerHTML.slice(0, 120)`))
		}
		do(t, ctx, "arrow down", chromedp.KeyEvent(kb.ArrowDown))
		if got := eval[string](t, ctx, `document.activeElement.closest("tr")?.dataset.id ?? ""`); got != shown[len(shown)-2] {
			t.Errorf("ArrowDown moved focus to row %q, want %q", got, shown[len(shown)-2])
		}
		do(t, ctx, "enter expands", chromedp.KeyEvent("\r"))
		wait(t, ctx, "the row expanded", `document.activeElement.closest("tr").nextElementSibling?.classList.contains("detail") &&
			document.activeElement.getAttribute("aria-expanded") === "true"`)
		do(t, ctx, "enter collapses", chromedp.KeyEvent("\r"))

		do(t, ctx, "resume", chromedp.Click(css("#pause")))
		shown = append(shown, ids[0], ids[2], ids[3])
		waitRows(t, ctx, "the rows that came while paused", newestFirst(shown...)...)
		if !eval[bool](t, ctx, `document.getElementById("paused-info").hidden && document.getElementById("pause").getAttribute("aria-pressed") === "false"`) {
			t.Error("still shown as paused after Resume")
		}
	})

	step("clear empties the table while the stream goes on; stop ends the subscription", func(t *testing.T) {
		do(t, ctx, "clear", chromedp.Click(css("#clear")))
		waitRows(t, ctx, "an empty table")
		wait(t, ctx, "the count reset", `document.getElementById("count").textContent === "0" && !document.getElementById("events-empty").hidden`)
		ids := s.publish(t, m("odd", `{"n":31}`), m("even", `{"n":32}`))
		waitRows(t, ctx, "the stream going on", ids[1])
		wait(t, ctx, "the count", `document.getElementById("count").textContent === "1"`)
		stop(t, ctx, s)
		do(t, ctx, "clear", chromedp.Click(css("#clear")))
		waitRows(t, ctx, "an empty table")
		if !eval[bool](t, ctx, `document.getElementById("stop").disabled && document.getElementById("start").textContent === "Start"`) {
			t.Error("the buttons still say a stream is running")
		}
	})

	step("a stream cut off resumes from its last id; what the history lost is a gap", func(t *testing.T) {
		do(t, ctx, "predicate", setPredicate(`key == "even"`))
		waitValid(t, ctx, `key == "even"`)
		var last string
		for attempt := 1; ; attempt++ {
			start(t, ctx)
			last = s.publish(t, alternate(41, 2)...)[1] // 42
			waitRows(t, ctx, "the first message", last)
			// An administrator ends the subscription; SSE gives the page no reason, so it
			// reconnects (after a second) with from=<last>. Meanwhile 12 messages arrive: the
			// history keeps the last 5.
			kicked := s.subscription(t).ID
			s.kick(t, kicked)
			ids := s.publish(t, alternate(43, 12)...) // even: 44, 46, …, 54
			if slices.ContainsFunc(s.sup.Subscriptions(), func(si supervisor.SubscriptionInfo) bool { return si.ID != kicked }) {
				// The page came back before the messages were published: nothing was missed.
				if attempt == 3 {
					t.Fatal("the page reconnected within the time it took to publish 12 messages, three times")
				}
				t.Logf("attempt %d: the page reconnected early; again", attempt)
				continue
			}
			waitRows(t, ctx, "a gap, then what the history holds", ids[11], ids[9], ids[7], "gap:history", "local", "local", last)
			break
		}
		if got := text(t, ctx, "#events tbody tr.ev-gap"); !strings.Contains(got, "gap: 7 missed: the server's history no longer holds them") {
			t.Errorf("gap row = %q", got)
		}
		locals := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-local")].map(r => r.textContent)`)
		if len(locals) != 2 || !strings.Contains(locals[0], "reconnected, resuming after "+last) || !strings.Contains(locals[1], "disconnected") {
			t.Errorf("rows about the connection = %q", locals)
		}
		wait(t, ctx, "the figures", `document.getElementById("gaps").textContent === "7" && document.getElementById("count").textContent === "4"`)
		reqs, _ := rec.since(0)
		ss := streams(reqs)
		if got := ss[len(ss)-1].query["from"]; len(got) != 1 || got[0] != last {
			t.Errorf("the page resumed with from=%q", got)
		}
		stop(t, ctx, s)
	})

	step("over WebSocket, a predicate on the source reads every source; their states show inline", func(t *testing.T) {
		const where = `source == "alpha" && key == "odd"`
		do(t, ctx, "set", choose("transport", "ws"), pickSources(), setPredicate(where))
		waitValid(t, ctx, where)
		start(t, ctx)
		if sub := s.subscription(t); sub.Transport != "websocket" || strings.Join(sub.Sources, ",") != "alpha,demo,feed" {
			t.Errorf("subscription %+v, want websocket over alpha, demo and feed", sub)
		}
		ids := s.publish(t, alternate(61, 4)...)
		// demo's odd numbers arrive all the while; the predicate keeps them out.
		waitRows(t, ctx, "alpha's odd messages", ids[2], ids[0])

		// feed's upstream restarts: the source reconnects, and every stream that reads it is
		// told, whatever its predicate.
		feed.drop()
		waitRows(t, ctx, "feed's states", "status", "status", ids[2], ids[0])
		states := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-status")].map(r => r.textContent)`)
		var lastErr string
		for _, si := range s.sup.Sources() {
			if si.Name == "feed" {
				lastErr = si.LastError
			}
		}
		if lastErr == "" || !strings.HasSuffix(states[1], "feedsource is reconnecting: "+lastErr) || !strings.HasSuffix(states[0], "feedsource is up") {
			t.Errorf("status rows %q, want feed reconnecting (%s), then up", states, lastErr)
		}
		// The panels catch up at once rather than at their next refresh.
		js, _ := json.Marshal(lastErr)
		wait(t, ctx, "the source panel", fmt.Sprintf(`document.querySelector('#source-table tr[data-source="feed"] td.last-error')?.textContent === %s &&
			document.querySelector('#sources label[data-source="feed"]').title === "last error: " + %s`, js, js))

		// An administrator ends it: the page says so and does not come back.
		s.kick(t, s.subscription(t).ID)
		wait(t, ctx, "the page to give up", `document.getElementById("stream-status").dataset.state === "stopped" &&
			document.getElementById("stop").disabled`)
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, "ended by an administrator") {
			t.Errorf("#stream-status = %q, want the server's reason", got)
		}
		waitRows(t, ctx, "a row saying why", "local", "status", "status", ids[2], ids[0])
		if n := s.sup.Count(); n != 0 {
			t.Errorf("%d subscriptions after the kick", n)
		}
	})

	step("over WebSocket, a stream cut for its predicate's cost is not reopened", func(t *testing.T) {
		// 183 instructions: within the estimate, but over the limit on a 10 KB string; a
		// resume would meet the same message in its backlog and be cut again.
		const where = `has(body.s) && body.s.matches("(.*.*.*.*.*.*.*.*){10}x")`
		do(t, ctx, "set", choose("transport", "ws"), pickSources("alpha"), setPredicate(where))
		waitValid(t, ctx, where)
		start(t, ctx)
		s.publish(t, m("k", `{"s":"`+strings.Repeat("a", 10_000)+`"}`))
		wait(t, ctx, "the page to give up", `document.getElementById("stream-status").dataset.state === "stopped" &&
			document.getElementById("stop").disabled`)
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, "predicate too costly") {
			t.Errorf("#stream-status = %q, want the server's reason", got)
		}
		waitUntil(t, "no subscription after the cut", func() bool { return s.sup.Count() == 0 })
	})

	step("after a server restart the page resumes and shows the position as unknown", func(t *testing.T) {
		do(t, ctx, "set", pickSources("alpha"), setPredicate(`key == "even"`))
		waitValid(t, ctx, `key == "even"`)
		start(t, ctx)
		last := s.publish(t, alternate(71, 2)...)[1]
		waitRows(t, ctx, "the first message", last)

		// The server stops (WebSocket 1001) and comes back on the same address with a new
		// alpha that already counted to 8; the page's from=<last> is ahead of it.
		opts := opts
		opts.addr, opts.before, opts.owner = s.addr, alternate(101, 8), top
		s.stop()
		s = startServer(t, opts)
		// Its history holds 4..8; the even ones are 4 (n=104), 6 and 8.
		waitRows(t, ctx, "a gap, then the new run's history", "alpha:8", "alpha:6", "alpha:4", "gap:unknown_id", "local", "local", last)
		if got := text(t, ctx, "#events tbody tr.ev-gap"); !strings.Contains(got, "server restarted: position unknown; at least 3 missed") {
			t.Errorf("gap row = %q", got)
		}
		locals := eval[[]string](t, ctx, `[...document.querySelectorAll("#events tbody tr.ev-local")].map(r => r.textContent)`)
		if len(locals) != 2 || !strings.Contains(locals[0], "reconnected, resuming after "+last) || !strings.Contains(locals[1], "the server is going away (server shutting down)") {
			t.Errorf("rows about the connection = %q", locals)
		}
		ids := s.publish(t, alternate(109, 2)...)
		waitRows(t, ctx, "live messages of the new run", ids[1], "alpha:8", "alpha:6", "alpha:4", "gap:unknown_id", "local", "local", last)
		reqs, _ := rec.since(0)
		ss := streams(reqs)
		if got := ss[len(ss)-1]; !got.websocket || strings.Join(got.query["from"], ",") != last {
			t.Errorf("the page resumed with from=%q (websocket %v), want %s", got.query["from"], got.websocket, last)
		}
		stop(t, ctx, s)
	})

	step("a token is sent as Bearer, and as ?token= where only a WebSocket's URL can carry it", func(t *testing.T) {
		// The server has no auth yet and ignores the token: this checks only what the page sends.
		_, typed := rec.since(0)
		do(t, ctx, "token", setValue("token", "s3cret"))
		wait(t, ctx, "the token kept", `sessionStorage.getItem("streamux.token") === "s3cret"`)
		do(t, ctx, "check", setPredicate(`key == "odd"`))
		waitValid(t, ctx, `key == "odd"`)
		do(t, ctx, "sse", choose("transport", "sse"))
		start(t, ctx)
		do(t, ctx, "ws", choose("transport", "ws"))
		start(t, ctx) // Restart
		ids := s.publish(t, alternate(111, 2)...)
		waitRows(t, ctx, "the stream working", ids[0])

		all, _ := rec.since(0)
		for i, r := range all {
			if tok := r.query.Get("token"); i < typed && (r.auth != "" || r.query.Has("token")) ||
				r.auth != "" && r.auth != "Bearer s3cret" || r.query.Has("token") && tok != "s3cret" {
				t.Errorf("%s %s sent Authorization %q, token %q", r.method, r.path, r.auth, tok)
			}
		}
		// A request that was on its way when the token was set may come without it; these were
		// all made after.
		after := all[typed:]
		var sse, ws int
		for _, r := range streams(after) {
			switch {
			case r.websocket:
				ws++
			case r.accept == "text/event-stream":
				sse++
			}
			if p := streamCredentialProblem(r, "s3cret"); p != "" {
				t.Error(p)
			}
		}
		if sse != 1 || ws != 1 {
			t.Errorf("%d SSE and %d WebSocket streams, want one of each", sse, ws)
		}
		// Setting the token refreshes the panels and the check at once.
		for _, path := range []string{"/v1/sources", "/v1/subscriptions", "/v1/check"} {
			if !slices.ContainsFunc(after, func(r request) bool { return r.path == path && r.auth == "Bearer s3cret" }) {
				t.Errorf("no %s with the token after it was set", path)
			}
		}
		checks := 0
		for _, r := range after {
			if r.where == `key == "odd"` {
				checks++
				if r.auth != "Bearer s3cret" {
					t.Errorf("the check of %s sent Authorization %q", r.where, r.auth)
				}
			}
		}
		if checks == 0 {
			t.Error(`no check of key == "odd"`)
		}
		if !eval[bool](t, ctx, `document.getElementById("auth-hint").hidden`) {
			t.Error("#auth-hint shown though the server accepted every call")
		}
		stop(t, ctx, s)
	})

	step("a server restarted without the page's source: the page says why it stops", func(t *testing.T) {
		do(t, ctx, "set", pickSources("alpha"), setPredicate(`key == "odd"`))
		waitValid(t, ctx, `key == "odd"`)
		start(t, ctx)
		ids := s.publish(t, alternate(121, 2)...)
		waitRows(t, ctx, "a message", ids[0])
		s.stop()
		s = startServer(t, serverOptions{addr: s.addr, demo: "demo", noAlpha: true, rec: rec, owner: top})
		wait(t, ctx, "the page to give up", `document.getElementById("stream-status").dataset.state === "error" &&
			document.getElementById("stop").disabled`)
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, `no source named "alpha" (unknown_source)`) {
			t.Errorf("#stream-status = %q, want the server's reason", got)
		}
		if n := s.sup.Count(); n != 0 {
			t.Errorf("%d subscriptions on the new server", n)
		}
	})

	step("messages dropped for a slow page are a gap", func(t *testing.T) {
		// A queue of one event: a burst overflows it however fast the page reads.
		d := startServer(t, serverOptions{queue: output.Limits{Events: 1}})
		do(t, ctx, "load", chromedp.Navigate(d.URL+"/"), chromedp.WaitVisible(css(`#sources input[value="alpha"]`)),
			pickSources("alpha"), choose("policy", "drop"), setPredicate(""))
		waitValid(t, ctx, "")
		start(t, ctx)
		if sub := d.subscription(t); sub.Policy != "drop" {
			t.Errorf("subscription policy %q, want drop", sub.Policy)
		}
		total := 0
		for burst := 1; ; burst++ {
			total += len(d.publish(t, alternate(1, 500)...))
			// Every message is either shown or counted missed, once the gaps are flushed.
			wait(t, ctx, "every message delivered or reported", fmt.Sprintf(`(() => {
				const n = (id) => Number(document.getElementById(id).textContent.replaceAll(",", ""));
				return n("count") + n("gaps") === %d; })()`, total))
			if meter(t, ctx, "gaps") > 0 {
				break
			}
			if burst == 10 {
				t.Fatalf("%d messages through a queue of one and none dropped", total)
			}
		}
		wait(t, ctx, "a gap row", `document.querySelector('#events tbody tr.ev-gap[data-reason="dropped"]') !== null`)
		if got := text(t, ctx, `#events tbody tr.ev-gap`); !strings.Contains(got, " missed: slow consumer") {
			t.Errorf("gap row = %q", got)
		}
		if gaps, dropped := meter(t, ctx, "gaps"), d.subscription(t).Counters.Dropped; uint64(gaps) != dropped {
			t.Errorf("#gaps = %d, the server dropped %d", gaps, dropped)
		}
		stop(t, ctx, d)
	})
}

// TestScreenshot writes docs/webui.png: go test ./internal/webui -run TestScreenshot -screenshot $PWD/docs/webui.png
func TestScreenshot(t *testing.T) {
	if *screenshot == "" {
		t.Skip("no -screenshot path given")
	}
	ctx := browser(t)
	// What `streamux` with no arguments serves: one demo source at its default rate.
	s := startServer(t, serverOptions{demo: "demo", noAlpha: true})
	do(t, ctx, "load", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(css(`#sources input[value="demo"]`)), typePredicate(`key == "even" || body.n % 5 == 0`))
	waitValid(t, ctx, `key == "even" || body.n % 5 == 0`)
	start(t, ctx)
	wait(t, ctx, "a table full of events", `document.querySelectorAll("#events tbody tr.ev-message").length >= 24 &&
		document.getElementById("subscription-table").querySelector("tr[data-id]") !== null`)
	do(t, ctx, "expand one", chromedp.Click(css(`#events tbody tr.ev-message:nth-child(3) td.body`)), chromedp.Blur(css("#predicate")))
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(*screenshot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d KB)", *screenshot, len(png)>>10)
}
