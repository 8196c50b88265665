package httpapi_test

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/output"
)

// A message that a source accepts reaches every client that keeps up, whatever the queue's
// byte limit: one larger than queue_bytes once closed every matching subscriber as a slow
// consumer, and gave a drop subscriber a gap in its place (issue 16).
func TestMessageOverQueueBytes(t *testing.T) {
	e := newEnv(t, envOptions{queue: output.Limits{Bytes: 64 << 10}})
	q := func(policy string) url.Values { return url.Values{"source": {"other"}, "policy": {policy}} }

	resp := e.get(q("disconnect"), "application/x-ndjson")
	nd := &lineClient{resp: resp, sc: bufio.NewScanner(resp.Body)}
	nd.sc.Buffer(nil, 1<<20)
	resp = e.get(q("drop"), "application/x-ndjson")
	ndDrop := &lineClient{resp: resp, sc: bufio.NewScanner(resp.Body)}
	ndDrop.sc.Buffer(nil, 1<<20)
	clients := map[string]client{"ndjson": nd, "ndjson drop": ndDrop, "sse": e.sse(q("disconnect"), ""), "websocket": e.ws(q("disconnect"))}
	for _, c := range clients {
		defer c.close()
	}
	clients["sse"].(*sseClient).preamble(t)

	text := strings.Repeat("big message ", 200<<10/12) // 200 KiB, three times the queue
	for i := range 2 {
		resp, err := e.client.Post(e.srv.URL+"/v1/sources/other/messages", "text/plain", strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ingest %d: %s", i, resp.Status)
		}
		for name, c := range clients {
			ev := c.next(t)
			if ev.Type != "message" || ev.Seq != uint64(i+1) || !bytes.Equal(ev.Body, []byte(`"`+text+`"`)) {
				t.Fatalf("%s: message %d: %s %s %d bytes of body", name, i+1, ev.Type, ev.Reason, len(ev.Body))
			}
		}
	}
}
