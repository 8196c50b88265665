package httpapi

import (
	"fmt"
	"sync"
	"time"
)

// ingestGate counts the ingest requests in progress, in all and per client: a credential, or
// without authentication an IP address. A streaming request holds its place for as long as it
// lasts; what each request may hold of memory and time is the body rules' (body.go).
type ingestGate struct {
	lim Limits

	mu       sync.Mutex
	total    int
	byClient map[string]int
}

func newIngestGate(l Limits) *ingestGate {
	return &ingestGate{lim: l, byClient: map[string]int{}}
}

// enter admits one ingest request from addr by cred ("" without authentication), or says which
// limit refuses it. The caller must call the returned release exactly once.
func (g *ingestGate) enter(addr, cred string) (release func(), aerr *apiError) {
	key, who := "credential "+cred, "this credential"
	g.mu.Lock()
	defer g.mu.Unlock()
	exempt := false
	if cred == "" {
		key, who = "address "+addr, "this address"
		exempt = !g.lim.ApplyToLoopback && isLoopback(addr)
	}
	switch {
	case g.total >= g.lim.IngestRequests:
		return nil, tooMany("ingest_requests", fmt.Sprintf("the server has its limit of %d ingest requests in progress", g.lim.IngestRequests), time.Second)
	case !exempt && g.byClient[key] >= g.lim.IngestRequestsPerClient:
		return nil, tooMany("ingest_requests_per_client", fmt.Sprintf("%s has its limit of %d ingest requests in progress", who, g.lim.IngestRequestsPerClient), time.Second)
	}
	g.total++
	g.byClient[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.byClient[key]--; g.byClient[key] == 0 {
				delete(g.byClient, key)
			}
		})
	}, nil
}
