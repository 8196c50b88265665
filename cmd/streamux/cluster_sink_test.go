package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/sourcetest"
)

// numberHook is a webhook receiver that records the "n" of every message of every batch it
// acknowledges, in the order received.
type numberHook struct {
	mu  sync.Mutex
	got []int
}

func (h *numberHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var evs []struct {
		Type string
		Body struct{ N int }
	}
	if err := json.Unmarshal(b, &evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	for _, ev := range evs {
		if ev.Type == "message" {
			h.got = append(h.got, ev.Body.N)
		}
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *numberHook) numbers() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got...)
}

// A webhook sink on three nodes is delivered by one; killed (SIGKILL) in the middle of the
// stream, another node takes the sink over once the lease expires and goes on from the position
// in the cluster's state: every message delivered, in order, what comes twice at most the batch
// the killed node had sent and not recorded.
func TestClusterSinkHolderKilled(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	h := &numberHook{}
	hook := httptest.NewServer(h)
	defer hook.Close()
	const batch = 10
	nodes, _ := startNodes(t, clusterSpec{
		urls:    oneURL(urls),
		sources: "  - {name: in, type: http}\n",
		extra: func(int) string {
			return fmt.Sprintf("limits: {webhook_allow_private: true}\nsinks: [{name: all, type: webhook, url: %q, batch: {max: %d, wait: 5ms}}]\n", hook.URL, batch)
		},
	})
	holder := func(n *cnode) string {
		resp, err := client.Get(n.url("/v1/sinks/all"))
		if err != nil {
			return ""
		}
		var si struct{ Node string }
		if jsonDecode(resp, &si) != nil {
			return ""
		}
		return si.Node
	}
	var first string
	eventually(t, 20*time.Second, "a node holding the sink", func() bool { first = holder(nodes[0]); return first != "" })
	var victim, via *cnode
	for _, n := range nodes {
		if n.name == first {
			victim = n
		} else if via == nil {
			via = n
		}
	}
	ingest := func(from, n int) {
		var lines []string
		for i := from; i < from+n; i++ {
			lines = append(lines, fmt.Sprintf(`{"n":%d}`, i))
		}
		via.mustIngest("in", "", lines...)
	}
	const total = 2000
	// Ingested while the sink delivers, so that the kill comes in the middle of the stream.
	for i := 0; i < total/2; i += 100 {
		ingest(i, 100)
	}
	eventually(t, 30*time.Second, "deliveries under way", func() bool { return len(h.numbers()) >= 200 })
	victim.kill()
	killedAt := len(h.numbers())
	for i := total / 2; i < total; i += 100 {
		ingest(i, 100)
	}
	eventually(t, 60*time.Second, fmt.Sprintf("all %d delivered", total), func() bool {
		seen := map[int]bool{}
		for _, n := range h.numbers() {
			seen[n] = true
		}
		return len(seen) == total
	})
	got := h.numbers()
	// In order, each message after the one before it but for the batch sent again.
	next := 0 // the least number not delivered yet
	for i, n := range got {
		switch {
		case n == next:
			next++
		case n > next:
			t.Fatalf("at %d: %d delivered before %d", i, n, next)
		case next-n > batch:
			t.Fatalf("at %d: %d again, after %d: more than a batch back", i, n, next-1)
		}
	}
	if dup := len(got) - total; dup > batch {
		t.Errorf("%d messages delivered twice, more than a batch of %d", dup, batch)
	}
	var second string
	eventually(t, 20*time.Second, "another node holding the sink", func() bool { second = holder(via); return second != "" && second != first })
	t.Logf("%s killed after %d deliveries; %s took the sink over; %d deliveries of %d messages", first, killedAt, second, len(got), total)
}
