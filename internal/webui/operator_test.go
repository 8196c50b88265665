package webui_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sink/webhook"
)

// TestBrowserOperatorPanels checks, in Chromium against a real server, what the page shows an
// operator: each source's rate as a chart, the age of its last message, the time of its last
// error; the subscriptions and sinks with their counters; and a stream resumed from an id typed
// in.
func TestBrowserOperatorPanels(t *testing.T) {
	ctx := browser(t)
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	rec := &recorder{}
	feed := startUpstream(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	s := startServer(t, serverOptions{history: 20, demo: "demo", demoRate: 20, feed: feed, rec: rec, before: alternate(1, 4),
		sinks: []config.Sink{{Name: "hook", Type: "webhook", Sources: config.Names{"alpha"}, Spec: &webhook.Config{URL: hook.URL}}}})

	do(t, ctx, "load", chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(css(`#source-table tr[data-source="demo"]`)),
		chromedp.WaitVisible(css(`#sources input[value="alpha"]`)))

	step("pure helpers", func(t *testing.T) {
		failures := eval[[]string](t, ctx, `(async () => {
			const f = await import("./format.js");
			const out = [];
			const eq = (what, got, want) => {
				if (JSON.stringify(got) !== JSON.stringify(want)) out.push(what + ": got " + JSON.stringify(got) + ", want " + JSON.stringify(want));
			};
			eq("rates", f.rates([[0, 10], [2000, 30], [3000, 30]]), [[2000, 10], [3000, 0]]);
			eq("rates after a restart", f.rates([[0, 10], [1000, 20], [2000, 5], [3000, 8]]), [[3000, 3]]);
			eq("rates of one sample", f.rates([[0, 10]]), []);
			eq("sparkPoints", f.sparkPoints([[50, 0], [100, 4], [100, 2]], 100, 100, 80, 20), "40,20 80,0 80,10");
			eq("sparkPoints all zero", f.sparkPoints([[100, 0]], 100, 100, 80, 20), "80,20");
			eq("sparkPoints before the window", f.sparkPoints([[-50, 1]], 100, 100, 80, 20), "0,0");
			eq("parseIds", f.parseIds(" demo:42, orders:7 a:b:3"), {ids: ["demo:42", "orders:7", "a:b:3"]});
			eq("parseIds empty", f.parseIds(" , "), {ids: []});
			eq("parseIds no seq", f.parseIds("demo:42,demo"), {error: '"demo" is not an id: write source:seq, as in demo:42'});
			eq("parseIds no source", f.parseIds(":4"), {error: '":4" is not an id: write source:seq, as in demo:42'});
			eq("parseIds seq not a number", f.parseIds("demo:x"), {error: '"demo:x" is not an id: write source:seq, as in demo:42'});
			eq("bytes", [f.bytes(512), f.bytes(1536), f.bytes(3 * 1048576), f.bytes(undefined)], ["512 B", "1.5 KB", "3.0 MB", "–"]);
			return out;
		})()`)
		for _, f := range failures {
			t.Error(f)
		}
	})

	step("each source's rate is a chart of the last minutes", func(t *testing.T) {
		// A point per refresh after the first (every 3 s): three of them take about 10 s.
		wait(t, ctx, "three points in demo's chart", `Number(document.querySelector('#source-table tr[data-source="demo"] svg.spark')?.dataset.points) >= 3`)
		chart := func(name string) (points []string, now string) {
			got := eval[[]string](t, ctx, fmt.Sprintf(`(() => { const r = document.querySelector('#source-table tr[data-source=%q]');
				return [r.querySelector("svg.spark").dataset.points, r.querySelector("svg.spark polyline").getAttribute("points"), r.querySelector(".rate-now").textContent]; })()`, name))
			n, _ := strconv.Atoi(got[0])
			points = strings.Fields(got[1])
			if len(points) != n {
				t.Errorf("%s: data-points %s, but the polyline has %d points: %q", name, got[0], len(points), got[1])
			}
			return points, got[2]
		}
		// demo sends 20 a second: its latest rate is not zero and its line leaves the bottom.
		points, now := chart("demo")
		if rate, err := strconv.ParseFloat(strings.TrimSuffix(now, " msg/s"), 64); err != nil || rate <= 0 {
			t.Errorf("demo's rate shown as %q, want a positive msg/s", now)
		}
		if y := points[len(points)-1][strings.Index(points[len(points)-1], ",")+1:]; y == "20" {
			t.Errorf("demo's newest point %s lies on the bottom line", points[len(points)-1])
		}
		// alpha received nothing meanwhile: a flat line at the bottom, at 0 msg/s.
		wait(t, ctx, "points in alpha's chart", `Number(document.querySelector('#source-table tr[data-source="alpha"] svg.spark')?.dataset.points) >= 2`)
		points, now = chart("alpha")
		if now != "0 msg/s" {
			t.Errorf("alpha's rate shown as %q, want 0 msg/s", now)
		}
		for _, p := range points {
			if !strings.HasSuffix(p, ",20") {
				t.Errorf("alpha's chart %q, want every point at the bottom (y = 20)", points)
				break
			}
		}
	})

	step("the age of each source's last message, live", func(t *testing.T) {
		age := regexp.MustCompile(`^(\d+) s ago$`)
		cell := `#source-table tr[data-source="alpha"] td.age`
		first := age.FindStringSubmatch(text(t, ctx, cell))
		if first == nil {
			t.Fatalf("alpha's age %q, want a number of seconds", text(t, ctx, cell))
		}
		var want time.Time
		for _, si := range s.sup.Sources() {
			if si.Name == "alpha" {
				want = si.Counters.LastMessage
			}
		}
		at := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).dataset.at`, cell))
		if got, err := time.Parse(time.RFC3339Nano, at); err != nil || !got.Equal(want) {
			t.Errorf("alpha's age counts from %q, want its last message at %v", at, want)
		}
		// Nothing comes to alpha: its age grows between refreshes.
		n, _ := strconv.Atoi(first[1])
		wait(t, ctx, "alpha's age to grow", fmt.Sprintf(`(() => { const m = /^(\d+) s ago$/.exec(document.querySelector(%q).textContent);
			return m !== null && Number(m[1]) > %d; })()`, cell, n))
		if got := text(t, ctx, `#source-table tr[data-source="feed"] td.age`); got != "" {
			t.Errorf("feed, which received nothing, shows an age %q", got)
		}
	})

	step("a source whose upstream is down shows its state and the time of its last error", func(t *testing.T) {
		if got := text(t, ctx, `#source-table tr[data-source="feed"] td.error-at`); got != "" {
			t.Errorf("feed shows an error time %q before any error", got)
		}
		down := time.Now()
		feed.srv.Close()
		feed.drop()
		wait(t, ctx, "feed reconnecting", `document.querySelector('#source-table tr[data-source="feed"] .dot')?.dataset.state === "reconnecting"`)
		// The source retries, failing the same way each time; the page shows the error the
		// server gives and when it last happened.
		var shown []string
		waitUntil(t, "the page to show feed's last error", func() bool {
			var lastErr string
			for _, si := range s.sup.Sources() {
				if si.Name == "feed" {
					lastErr = si.LastError
				}
			}
			shown = eval[[]string](t, ctx, `(() => { const r = document.querySelector('#source-table tr[data-source="feed"]');
				const at = r.querySelector("td.error-at"); return [r.querySelector("td.last-error").textContent, at.dataset.at ?? "", at.textContent]; })()`)
			return lastErr != "" && shown[0] == lastErr && shown[1] != ""
		})
		if at, err := time.Parse(time.RFC3339Nano, shown[1]); err != nil || at.Before(down) || at.After(time.Now()) {
			t.Errorf("feed's error at %q, want a time after the upstream went down (%v)", shown[1], down)
		}
		if !regexp.MustCompile(`^\d\d:\d\d:\d\d \(\d+ s ago\)$`).MatchString(shown[2]) {
			t.Errorf("feed's error time shown as %q, want HH:MM:SS (N s ago)", shown[2])
		}
	})

	var last string
	step("the subscriptions list this page's stream with its counters; the sinks theirs", func(t *testing.T) {
		do(t, ctx, "set", pickSources("alpha"), setPredicate(`key == "even"`))
		waitValid(t, ctx, `key == "even"`)
		start(t, ctx)
		sub := s.subscription(t)
		ids := s.publish(t, alternate(5, 4)...) // alpha:5..8; the even ones are 6 and 8
		last = ids[3]
		waitRows(t, ctx, "the even messages", ids[3], ids[1])
		row := fmt.Sprintf(`#subscription-table tr[data-id="%d"]`, sub.ID)
		wait(t, ctx, "the counters", fmt.Sprintf(`(() => { const r = document.querySelector(%q);
			const c = (n) => r?.querySelector('td[data-counter="' + n + '"]')?.textContent;
			return c("matched") === "2" && c("delivered") === "2" && c("dropped") === "0" && c("predicate_errors") === "0" && c("queue_depth") === "0"; })()`, row))
		if got := text(t, ctx, row); !strings.Contains(got, `key == "even"`) || !strings.Contains(got, "alpha") || !strings.Contains(got, "sse") {
			t.Errorf("subscription row %q, want its predicate, source and transport", got)
		}
		if got := text(t, ctx, row+" td.started"); !regexp.MustCompile(`^\d+ s ago$`).MatchString(got) {
			t.Errorf("started %q, want a number of seconds ago", got)
		}

		// The sink of alpha delivers what was published; the page shows what the server says.
		var shown, want string
		waitUntil(t, "the sink's delivered counter", func() bool {
			resp, err := s.client.Get(s.URL + "/v1/sinks/hook")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var info struct{ Delivered uint64 }
			if json.NewDecoder(resp.Body).Decode(&info) != nil {
				return false
			}
			want = strconv.FormatUint(info.Delivered, 10)
			shown = text(t, ctx, `#sink-table tr[data-sink="hook"] td[data-counter="delivered"]`)
			return info.Delivered >= 4 && shown == want
		})
		for _, c := range []string{"failed_attempts", "gaps", "lag"} {
			if got := text(t, ctx, `#sink-table tr[data-sink="hook"] td[data-counter="`+c+`"]`); got != "0" {
				t.Errorf("sink's %s = %q, want 0", c, got)
			}
		}
		if got := text(t, ctx, `#sink-table tr[data-sink="hook"] td[data-counter="lag_seconds"]`); got != "0" {
			t.Errorf("sink's lag in seconds = %q, want 0", got)
		}
		stop(t, ctx, s)
	})

	step("a stream resumed from an id typed in delivers exactly the messages after it", func(t *testing.T) {
		do(t, ctx, "clear", chromedp.Click(css("#clear")))
		_, before := rec.since(0)
		// Not an id: the page says so and starts nothing.
		do(t, ctx, "set", setPredicate(""), setValue("from", "alpha"))
		waitValid(t, ctx, "")
		do(t, ctx, "start refused", chromedp.Click(css("#start")))
		wait(t, ctx, "the id refused", `!document.getElementById("from-error").hidden &&
			document.getElementById("from-error").textContent.includes("write source:seq") &&
			document.getElementById("from").getAttribute("aria-invalid") === "true"`)
		if reqs, _ := rec.since(before); len(streams(reqs)) != 0 || s.sup.Count() != 0 {
			t.Fatalf("%d stream requests, %d subscriptions for an id that is not one", len(streams(reqs)), s.sup.Count())
		}

		// alpha holds 1..8: after alpha:6 come 7 and 8 from its history, then what is new.
		do(t, ctx, "set", setValue("from", "alpha:6"))
		wait(t, ctx, "the error gone", `document.getElementById("from-error").hidden`)
		start(t, ctx)
		waitRows(t, ctx, "the messages after alpha:6", last, "alpha:7")
		ids := s.publish(t, alternate(9, 1)...)
		waitRows(t, ctx, "then the new one", ids[0], last, "alpha:7")
		reqs, _ := rec.since(before)
		if ss := streams(reqs); len(ss) != 1 || strings.Join(ss[0].query["from"], ",") != "alpha:6" {
			t.Errorf("stream requests %+v, want one with from=alpha:6", ss)
		}
		stop(t, ctx, s)
	})
}
