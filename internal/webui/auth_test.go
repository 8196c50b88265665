package webui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamux/streamux/internal/auth"
)

// tenantMsg is one envelope line with headers, for a forced predicate on headers.tenant.
type tenantMsg struct {
	Key     string            `json:"key"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body"`
}

// tenant is a message of tenant t ("": no headers at all) with body {"n": n}.
func tenant(t string, n int) tenantMsg {
	m := tenantMsg{Key: "k", Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}
	if t != "" {
		m.Headers = map[string]string{"tenant": t}
	}
	return m
}

// publishAs posts msgs to alpha with the credential key, as Authorization: Bearer, and returns
// their event ids.
func (s *server) publishAs(t *testing.T, key string, msgs ...tenantMsg) []string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, x := range msgs {
		if err := enc.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/sources/alpha/messages?envelope=true", &b)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Accepted int }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.Accepted != len(msgs) {
		t.Fatalf("publish %d messages: %s, accepted %d, %v", len(msgs), resp.Status, got.Accepted, err)
	}
	ids := make([]string, len(msgs))
	for i := range ids {
		s.alpha++
		ids[i] = fmt.Sprintf("alpha:%d", s.alpha)
	}
	return ids
}

// pickerJS lists the sources the picker offers.
const pickerJS = `JSON.stringify([...document.querySelectorAll('#sources input[name="source"]')].map(b => b.value))`

// TestBrowserAuth drives the page against a server with API keys: no token, a wrong one, a key
// confined to one source and one tenant by a forced predicate, and an admin key.
func TestBrowserAuth(t *testing.T) {
	ctx := browser(t)
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	const (
		readerKey = "reader-8f3c2a"
		writerKey = "writer-51d0e7"
		adminKey  = "admin-c94b16"
		wrongKey  = "wrong-000000"
		forced    = `headers.tenant == "acme"`
	)
	a := auth.Config{APIKeys: []auth.APIKey{
		{Name: "reader", SHA256: auth.HashKey(readerKey), Sources: []string{"alpha"}, Where: forced},
		{Name: "writer", SHA256: auth.HashKey(writerKey), Sources: []string{}, Write: []string{"alpha"}},
		{Name: "admin", SHA256: auth.HashKey(adminKey), Admin: true},
	}}
	rec := &recorder{}
	// A demo source besides alpha, which the reader may not read: the picker must not offer it.
	s := startServer(t, serverOptions{auth: a, demo: "demo", demoRate: 5, rec: rec})
	// Messages of every kind in alpha's history before the page opens: nothing of it may show.
	s.publishAs(t, writerKey, tenant("acme", 1), tenant("globex", 2), tenant("", 3))

	do(t, ctx, "load", chromedp.Navigate(s.URL+"/"))

	step("without a token the page asks for one and cannot stream", func(t *testing.T) {
		wait(t, ctx, "the auth hint and the sources error", `(() => { const h = document.getElementById("auth-hint"), e = document.getElementById("sources-error");
			return !h.hidden && h.textContent === "This server needs a token." && !e.hidden && e.textContent.startsWith("Cannot list sources: "); })()`)
		wait(t, ctx, "the check to say so", `document.getElementById("check-status").dataset.state === "error" &&
			document.getElementById("check-status").textContent.includes("needs a token")`)
		if got := eval[string](t, ctx, pickerJS); got != "[]" {
			t.Errorf("picker offers %s without a token", got)
		}
		if !eval[bool](t, ctx, `document.getElementById("subscriptions").hidden`) {
			t.Error("#subscriptions shown without a token")
		}
		if got := eval[string](t, ctx, `document.getElementById("token").getAttribute("aria-invalid")`); got != "true" {
			t.Errorf("#token aria-invalid = %q, want true", got)
		}

		do(t, ctx, "start", chromedp.Click(css("#start")))
		wait(t, ctx, "the stream refused", `document.getElementById("stream-status").dataset.state === "error" &&
			document.getElementById("stop").disabled`)
		if got := text(t, ctx, "#stream-status"); !strings.Contains(got, "(unauthorized)") {
			t.Errorf("#stream-status = %q, want the server's unauthorized", got)
		}
		if n := s.sup.Count(); n != 0 {
			t.Errorf("%d subscriptions without a token", n)
		}
		s.publishAs(t, writerKey, tenant("acme", 4))
		waitRows(t, ctx, "no rows")
		if !eval[bool](t, ctx, `!document.getElementById("auth-hint").hidden`) {
			t.Error("#auth-hint hidden after the refused stream")
		}
		reqs, _ := rec.since(0)
		for _, r := range reqs {
			if r.auth != "" || r.query.Has("token") {
				t.Errorf("%s %s sent a credential (Authorization %q, token %q) though none was given", r.method, r.path, r.auth, r.query.Get("token"))
			}
		}
		if len(streams(reqs)) == 0 {
			t.Error("Start asked the server for no stream")
		}
	})

	step("a wrong token is said to be refused", func(t *testing.T) {
		_, before := rec.since(0)
		do(t, ctx, "token", setValue("token", wrongKey))
		wait(t, ctx, "the refusal", `sessionStorage.getItem("streamux.token") === "`+wrongKey+`" &&
			!document.getElementById("auth-hint").hidden &&
			document.getElementById("auth-hint").textContent === "The server refused this token."`)
		wait(t, ctx, "the sources error", `!document.getElementById("sources-error").hidden`)
		if got := eval[string](t, ctx, pickerJS); got != "[]" {
			t.Errorf("picker offers %s with a wrong token", got)
		}
		do(t, ctx, "start", chromedp.Click(css("#start")))
		// The page already shows the refusal of the stream without a token: wait for this one's.
		waitUntil(t, "a stream request with the wrong token", func() bool {
			reqs, _ := rec.since(before)
			return slices.ContainsFunc(streams(reqs), func(r request) bool { return r.credential() == wrongKey })
		})
		wait(t, ctx, "the stream refused", `document.getElementById("stream-status").dataset.state === "error" &&
			document.getElementById("stream-status").textContent.includes("unknown API key (unauthorized)")`)
		waitRows(t, ctx, "no rows")
		if n := s.sup.Count(); n != 0 {
			t.Errorf("%d subscriptions with a wrong token", n)
		}
	})

	// mix publishes messages of several tenants (and of none, and "ACME", which is not "acme")
	// and returns the ids of acme's, which are all that the reader may see.
	mix := func(t *testing.T, n int) []string {
		ids := s.publishAs(t, writerKey, tenant("acme", n), tenant("globex", n+1), tenant("", n+2),
			tenant("ACME", n+3), tenant("acme", n+4), tenant("globex", n+5))
		return []string{ids[0], ids[4]}
	}

	step("a key confined to alpha and to tenant acme sees only that", func(t *testing.T) {
		_, before := rec.since(0)
		do(t, ctx, "token", setValue("token", readerKey))
		wait(t, ctx, "the hint gone and only alpha offered", `document.getElementById("auth-hint").hidden &&
			document.getElementById("sources-error").hidden && `+pickerJS+` === '["alpha"]'`)
		if got := eval[string](t, ctx, `JSON.stringify([...document.querySelectorAll("#source-table tr[data-source]")].map(r => r.dataset.source))`); got != `["alpha"]` {
			t.Errorf("source panel lists %s, want alpha only", got)
		}
		if got := eval[string](t, ctx, `document.getElementById("token").getAttribute("aria-invalid")`); got != "false" {
			t.Errorf("#token aria-invalid = %q with an accepted token", got)
		}

		for _, tc := range []struct {
			transport string
			pick      []string // nothing ticked: the server reads every source the key may
			want      string   // the subscription's transport
		}{
			{"sse", []string{"alpha"}, "sse"},
			{"ws", nil, "websocket"},
		} {
			t.Run(tc.transport, func(t *testing.T) {
				do(t, ctx, "set", choose("transport", tc.transport), pickSources(tc.pick...), setPredicate("true"))
				waitValid(t, ctx, "true")
				start(t, ctx)
				sub := s.subscription(t)
				if sub.Transport != tc.want || strings.Join(sub.Sources, ",") != "alpha" {
					t.Errorf("subscription %+v, want %s over alpha", sub, tc.want)
				}
				if !strings.Contains(sub.Predicate, forced) {
					t.Errorf("subscription predicate %q, want the key's %s in it", sub.Predicate, forced)
				}
				n := 10
				if tc.transport == "ws" {
					n = 20
				}
				acme := mix(t, n)
				// A last acme message: once it shows, everything before it that would show has.
				last := s.publishAs(t, writerKey, tenant("acme", n+9))[0]
				waitRows(t, ctx, "acme's messages only", newestFirst(append(acme, last)...)...)
				wait(t, ctx, "the count", `document.getElementById("count").textContent === "3" && document.getElementById("gaps").textContent === "0"`)
				stop(t, ctx, s)
			})
		}

		reqs, _ := rec.since(before)
		var sse, ws int
		for _, r := range streams(reqs) {
			if p := streamCredentialProblem(r, readerKey); p != "" {
				t.Error(p)
			}
			switch {
			case r.websocket:
				ws++
			case r.accept == "text/event-stream":
				sse++
			}
		}
		if sse != 1 || ws != 1 {
			t.Errorf("%d SSE and %d WebSocket streams, want one of each", sse, ws)
		}
		if !slices.ContainsFunc(reqs, func(r request) bool { return r.path == "/v1/subscriptions" && r.auth == "Bearer "+readerKey }) {
			t.Error("no GET /v1/subscriptions with the reader's key")
		}
		if !eval[bool](t, ctx, `document.getElementById("subscriptions").hidden`) {
			t.Error("#subscriptions shown to a key that is not admin")
		}
		// Refused once, the page stops asking until the token changes: a refresh asks for the
		// sources again, not for the subscriptions.
		_, mark := rec.since(0)
		eval[bool](t, ctx, `document.dispatchEvent(new Event("visibilitychange")), true`)
		asked := func(path string) bool {
			reqs, _ := rec.since(mark)
			return slices.ContainsFunc(reqs, func(r request) bool { return r.path == path })
		}
		for deadline := time.Now().Add(5 * time.Second); !asked("/v1/sources"); time.Sleep(25 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no refresh of the sources after visibilitychange")
			}
		}
		time.Sleep(300 * time.Millisecond) // the refresh asks for both at once, if at all
		if asked("/v1/subscriptions") {
			t.Error("GET /v1/subscriptions again after a 403")
		}
	})

	step("the subscriptions panel is for admins", func(t *testing.T) {
		do(t, ctx, "token", setValue("token", adminKey))
		wait(t, ctx, "the panel and every source", `!document.getElementById("subscriptions").hidden &&
			document.getElementById("auth-hint").hidden && `+pickerJS+` === '["alpha","demo"]'`)
		// The admin's stream shows up in the panel; and the admin, with no forced predicate,
		// sees every tenant.
		do(t, ctx, "set", choose("transport", "sse"), pickSources("alpha"), setPredicate("true"))
		waitValid(t, ctx, "true")
		start(t, ctx)
		id := s.subscription(t).ID
		wait(t, ctx, "the admin's subscription listed", fmt.Sprintf(`document.querySelector('#subscription-table tr[data-id="%d"]') !== null`, id))
		ids := s.publishAs(t, writerKey, tenant("acme", 30), tenant("globex", 31), tenant("", 32))
		waitRows(t, ctx, "every tenant", newestFirst(ids...)...)
		stop(t, ctx, s)

		// Back to the reader's key: the panel goes away again, and so does demo.
		do(t, ctx, "token", setValue("token", readerKey))
		wait(t, ctx, "the panel hidden", `document.getElementById("subscriptions").hidden && `+pickerJS+` === '["alpha"]'`)
	})
}
