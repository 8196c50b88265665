package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Read some, disconnect, publish more, reconnect: exactly the missed matching messages, in
// order, then live ones; over each transport's way of resuming.
func TestResume(t *testing.T) {
	e := newEnv(t, envOptions{})
	where := `key == "even"`
	ways := []struct {
		name string
		open func(lastID string) client
	}{
		{"ndjson from", func(id string) client {
			q := url.Values{"where": {where}, "source": {"in"}}
			if id != "" {
				q.Set("from", id)
			}
			return e.ndjson(q)
		}},
		{"sse Last-Event-ID", func(id string) client { return e.sse(url.Values{"where": {where}, "source": {"in"}}, id) }},
		{"websocket from", func(id string) client {
			q := url.Values{"where": {where}, "source": {"in"}}
			if id != "" {
				q.Set("from", id)
			}
			return e.ws(q)
		}},
	}
	n := 0
	publish := func(count int) {
		batch := make([]msg, count)
		for i := range batch {
			n++
			batch[i] = msg{Key: keyEvenOdd(n), Body: json.RawMessage(fmt.Sprint(n))}
		}
		e.publish("in", batch...)
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			c := w.open("")
			start := n
			publish(10)
			var last event
			for i := 0; i < 3; i++ {
				last = c.next(t)
			}
			c.close()
			publish(10) // missed while away
			c = w.open(last.ID)
			defer c.close()
			publish(4) // live after the resume
			want := last.Seq + 2
			for ; want <= uint64(start+24); want += 2 {
				ev := c.next(t)
				if ev.Type != "message" || ev.Seq != want {
					t.Fatalf("after resuming from %s: got %s %d, want seq %d", last.ID, ev.Type, ev.Seq, want)
				}
			}
		})
	}
}

// An id older than the history, or from an earlier process, gets a gap event first.
func TestResumeBeyondHistory(t *testing.T) {
	e := newEnv(t, envOptions{history: 5})
	e.publish("in", numbered(12, keyEvenOdd)...)
	c := e.ndjson(url.Values{"source": {"in"}, "from": {"in:3"}})
	if ev := c.next(t); ev.Type != "gap" || ev.Missed != 4 || ev.Source != "in" || ev.Reason != "history" {
		t.Fatalf("want a gap of 4 (4..7), got %+v", ev)
	}
	for seq := uint64(8); seq <= 12; seq++ {
		if ev := c.next(t); ev.Seq != seq {
			t.Fatalf("got seq %d, want %d", ev.Seq, seq)
		}
	}
	c.close()
	c = e.ndjson(url.Values{"source": {"in"}, "from": {"in:999"}}) // an earlier process's id
	defer c.close()
	if ev := c.next(t); ev.Type != "gap" || ev.Missed != 7 || ev.Reason != "unknown_id" {
		t.Fatalf("want a gap for an unknown id, got %+v", ev)
	}
	if ev := c.next(t); ev.Seq != 8 {
		t.Fatalf("then the whole history: got %+v", ev)
	}
}

// A stream of several sources resumes every source: over SSE through the position in the
// id, over NDJSON with one id per source or, for a source the client saw nothing of, by time.
func TestResumeSeveralSources(t *testing.T) {
	e := newEnv(t, envOptions{})
	q := url.Values{"source": {"in,other"}}
	s := e.sse(q, "")
	e.publish("in", numbered(2, keyEvenOdd)...)
	first := s.next(t)
	if first.sseID != "in:1,other:0" {
		t.Fatalf("sse id %q, want in:1,other:0", first.sseID)
	}
	second := s.next(t)
	s.close()
	e.publish("other", numbered(3, keyEvenOdd)...)
	e.publish("in", numbered(1, keyEvenOdd)...)
	s = e.sse(q, second.sseID)
	defer s.close()
	var got []string
	for i := 0; i < 4; i++ {
		ev := s.next(t)
		got = append(got, ev.ID)
	}
	if strings.Join(got, " ") != "other:1 other:2 other:3 in:3" && strings.Join(got, " ") != "in:3 other:1 other:2 other:3" {
		t.Fatalf("resumed with %q: got %v", second.sseID, got)
	}

	// NDJSON with an id of "in" only: "other" resumes from that message's time.
	c := e.ndjson(url.Values{"source": {"in,other"}, "from": {"in:2"}})
	defer c.close()
	got = got[:0]
	for i := 0; i < 4; i++ {
		got = append(got, c.next(t).ID)
	}
	if strings.Join(got, " ") != "in:3 other:1 other:2 other:3" && strings.Join(got, " ") != "other:1 other:2 other:3 in:3" {
		t.Fatalf("resumed from in:2 alone: got %v", got)
	}
}

// Resume during a 5,000 msg/s burst: no hole, no duplicate.
func TestResumeDuringBurst(t *testing.T) {
	e := newEnv(t, envOptions{history: 100000})
	const total = 20000
	// Batches of 50 keep the parity of a message's number in its batch equal to its seq's.
	q := url.Values{"source": {"in"}, "where": {`key == "even"`}}
	// The first client, which resumes from nothing, joins before the publisher starts, so that
	// its first message is 2 (joining after the start, it raced with the first batch).
	first := e.sse(q, "")
	done := make(chan struct{})
	published := make(chan error, 1)
	go func() { // the publisher: 50 messages every 10 ms; waited for through published
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 0; n < total; n += 50 {
			select {
			case <-done:
				published <- nil
				return
			case <-tick.C:
			}
			if err := e.tryPublish("in", numbered(50, keyEvenOdd)...); err != nil {
				// The clients wait for messages that will not come: end their streams, so that
				// the test stops and reports this.
				e.srv.CloseClientConnections()
				published <- err
				return
			}
		}
		published <- nil
	}()
	defer func() {
		close(done)
		if err := <-published; err != nil {
			t.Errorf("the publisher: %v", err)
		}
	}()
	next := uint64(2)
	lastID := ""
	for round := 0; next < total/2; round++ {
		var c client
		switch {
		case round == 0:
			c = first
		case round%2 == 0:
			c = e.sse(q, lastID)
		default:
			qq := url.Values{"source": q["source"], "where": q["where"]}
			if lastID != "" {
				qq.Set("from", lastID)
			}
			c = e.ndjson(qq)
		}
		for i := 0; i < 500; i++ {
			ev := c.next(t)
			if ev.Type != "message" || ev.Seq != next {
				t.Fatalf("round %d: got %s seq %d, want seq %d", round, ev.Type, ev.Seq, next)
			}
			lastID = ev.ID
			next += 2
		}
		c.close()
	}
}

// An SSE stream that breaks before its first message still resumes where it began: the stream
// starts by setting the browser's last event id, without dispatching an event.
func TestSSEResumeBeforeAnyMessage(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(2, keyEvenOdd)...)
	for _, q := range []url.Values{{"source": {"in"}}, {"source": {"in,other"}}} {
		s := e.sse(q, "").(*sseClient)
		s.preamble(t)
		start := s.lastID
		s.close()
		e.publish("in", numbered(2, keyEvenOdd)...) // while away
		s = e.sse(q, start).(*sseClient)
		first := s.next(t)
		s.close()
		if first.Type != "message" || !strings.HasPrefix(first.sseID, fmt.Sprintf("in:%d", first.Seq)) || first.Seq != e.sup.Sources()[0].Counters.LastSeq-1 {
			t.Fatalf("resumed from %q: first event %+v", start, first)
		}
	}
}

// A Last-Event-ID that names a source the stream does not read (one since removed from the
// configuration, say) resumes the others, for a refusal would end EventSource's reconnecting
// for good; a from that names one is refused, as the client chose it.
func TestResumeIDOfASourceNotRead(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(2, keyEvenOdd)...)
	s := e.sse(url.Values{"source": {"in"}}, "in:1,gone:5")
	first := s.next(t)
	s.close()
	if first.ID != "in:2" {
		t.Fatalf("resumed from in:1,gone:5 at %q", first.ID)
	}
	resp, err := e.client.Get(e.streamURL(url.Values{"source": {"in"}, "from": {"in:1,gone:5"}}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `\"gone\"`) {
		t.Fatalf("from naming a source not read: %s %s", resp.Status, b)
	}
}
