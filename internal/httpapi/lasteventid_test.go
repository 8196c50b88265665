package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
)

// A browser's EventSource sends back the last id it saw as Last-Event-ID, and stops
// reconnecting for good on a 4xx. So a header streamux cannot read (mangled by a proxy, from
// another program on the same URL, an older format) is not a 400: each source it names no
// good id of resumes from the start of its history, after a gap with reason "unknown_id",
// which tells the client that some of it may have been seen and some of what came before
// lost. A from parameter, which a program chose, is still refused.
func TestMalformedLastEventID(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(3, keyEvenOdd)...)
	e.publish("other", numbered(2, keyEvenOdd)...)
	want := func(c client, evs ...string) {
		t.Helper()
		for _, w := range evs {
			ev := c.next(t)
			got := ev.ID
			if ev.Type == "gap" {
				got = "gap " + ev.Source + " " + ev.Reason
			}
			if got != w {
				t.Fatalf("got %s (%+v), want %s", got, ev, w)
			}
		}
	}
	for _, id := range []string{"garbage", "in:", "in:-1", "in:x", ":::", ","} {
		s := e.sse(url.Values{"source": {"in"}}, id)
		want(s, "gap in unknown_id", "in:1", "in:2", "in:3")
		s.close()
	}
	// The good ids of a header resume their sources; the others start over.
	s := e.sse(url.Values{"source": {"in", "other"}}, "in:2,%%%")
	want(s, "in:3", "gap other unknown_id", "other:1", "other:2")
	s.close()
	// An id given twice resumes from the earlier: nothing is lost.
	s = e.sse(url.Values{"source": {"in"}}, "in:1,in:2")
	want(s, "in:2", "in:3")
	s.close()
	req, _ := http.NewRequest("GET", e.streamURL(url.Values{"source": {"in"}, "from": {"garbage"}}), nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("from=garbage: %s, want 400", resp.Status)
	}
}
