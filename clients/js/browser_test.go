package streamuxjs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/streamux/streamux/client"
	"github.com/streamux/streamux/internal/browsertest"
	"github.com/streamux/streamux/internal/netcut"
)

// chromium starts headless Chromium for the test: skipped without one, unless CI=true.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := browsertest.Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return ctx
}

func evalJS[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ectx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.200s: %v", js, err)
	}
	return v
}

// In headless Chromium, the module as the server serves it (/streamux.js) receives what it
// subscribed to over the browser's own WebSocket and over SSE read through fetch, and resumes
// after each cut of the network with nothing missed or repeated.
func TestBrowser(t *testing.T) {
	ctx := chromium(t)
	srv := startServer(t, 0, "in")
	p := netcut.Start(t, strings.TrimPrefix(srv, "http://"))
	pub, err := client.New(srv)
	if err != nil {
		t.Fatal(err)
	}
	// A page of the server's own origin, through the proxy, without the web page's scripts.
	if _, err := chromedp.Run(ctx, chromedp.Navigate(p.URL()+"/healthz")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	for _, transport := range []string{"websocket", "sse"} {
		t.Run(transport, func(t *testing.T) {
			key := "browser-" + transport
			evalJS[bool](t, ctx, fmt.Sprintf(`(async () => {
				const { subscribe } = await import("/streamux.js");
				window.got = []; window.opens = [];
				window.sub = subscribe("/", 'key == %q', { sources: ["in"], transport: %q, backoff: { initial: 5, max: 50 },
					onEvent: (ev) => got.push(ev), onOpen: (info) => opens.push(info) });
				await sub.ready();
				return true;
			})()`, key, transport))
			defer evalJS[bool](t, ctx, `(() => { sub.close(); return true; })()`)

			const batches, per = 10, 20
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for b := range batches {
				msgs := make([]client.Message, per)
				for i := range msgs {
					msgs[i] = client.Message{Key: key, Body: fmt.Appendf(nil, `{"n":%d}`, b*per+i)}
				}
				msgs = append(msgs, client.Message{Key: "not-" + key, Body: []byte(`{"n":-1}`)})
				if _, err := pub.Publish(pctx, "in", msgs...); err != nil {
					t.Fatal(err)
				}
				// Cut once the page has read this batch: the next one comes to a page that reconnects.
				waitJS(t, ctx, "batch "+fmt.Sprint(b), fmt.Sprintf(`got.filter((e) => e.type === "message").length >= %d`, (b+1)*per))
				p.Cut()
			}
			// Every message once, in order, nothing else but statuses.
			bad := evalJS[string](t, ctx, fmt.Sprintf(`(() => {
				const ms = got.filter((e) => e.type !== "status");
				if (ms.length !== %d) return "got " + ms.length + " events: " + JSON.stringify(ms.filter((e) => e.type !== "message"));
				for (let i = 0; i < ms.length; i++) {
					if (ms[i].type !== "message" || ms[i].body.n !== i) return "event " + i + ": " + JSON.stringify(ms[i]);
				}
				const seqs = ms.map((e) => e.seq);
				if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1])) return "seqs out of order: " + seqs;
				if (sub.transport !== %q) return "transport " + sub.transport;
				return "";
			})()`, batches*per, transport))
			if bad != "" {
				t.Fatal(bad)
			}
			// Each cut but the last was followed by a connection that resumed after the last id.
			opens := evalJS[[]string](t, ctx, `opens.map((o) => o.transport + " " + o.reconnected + " " + o.from.join(","))`)
			if len(opens) < batches {
				t.Fatalf("%d connections for %d cuts: %q", len(opens), batches-1, opens)
			}
			for i, o := range opens[1:] {
				if !strings.HasPrefix(o, transport+" true in:") {
					t.Errorf("connection %d: %q, want a %s resuming after an id of in", i+1, o, transport)
				}
			}
		})
	}
}

// waitJS polls a condition in the page until it holds, failing after 15 s.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := chromedp.Do(wctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(10*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
