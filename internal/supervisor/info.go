package supervisor

import (
	"context"
	"sort"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// SourceInfo is what GET /v1/sources shows of one source.
type SourceInfo struct {
	Name      string       `json:"name"`
	Type      string       `json:"type"`
	State     source.State `json:"state"`
	Required  bool         `json:"required"`
	LastError string       `json:"last_error"`
	// LastErrorAt is when LastError last happened; zero (left out of JSON) before the first.
	LastErrorAt time.Time       `json:"last_error_at,omitzero"`
	Since       time.Time       `json:"since"`
	Reconnect   uint64          `json:"reconnects"`
	Counters    router.Counters `json:"counters"`
	// Adapter is what the adapter counts itself, if it does (source.Counted).
	Adapter any `json:"adapter,omitempty"`
	// Cluster is, in a cluster, who reads the source and where its log stands.
	*ClusterInfo
}

// Sources describes every source, sorted by name.
func (s *Supervisor) Sources() []SourceInfo {
	t := s.t()
	out := make([]SourceInfo, 0, len(t.names))
	for _, n := range t.names {
		out = append(out, s.sourceInfo(t, n))
	}
	return out
}

func (s *Supervisor) sourceInfo(t *table, n string) SourceInfo {
	in := t.runners[n].Info()
	si := SourceInfo{
		Name: n, Type: in.Type, State: in.State, Required: in.Required, LastError: in.LastError,
		LastErrorAt: in.LastErrorAt, Since: in.Since, Reconnect: in.Reconnects, Counters: t.routers[n].Counters(),
	}
	if c, ok := t.adapters[n].(source.Counted); ok {
		si.Adapter = c.Counters()
	}
	if s.logs != nil {
		si.State = s.clusterState(n)
		si.ClusterInfo = s.clusterInfo(n)
	}
	return si
}

// Ready reports whether every required source is up, and names the ones that are not.
func (s *Supervisor) Ready() (bool, []string) {
	var down []string
	t := s.t()
	for _, n := range t.names {
		in := t.runners[n].Info()
		if s.logs != nil {
			in.State = s.clusterState(n)
		}
		if in.Required && in.State != source.Up || s.logs != nil && !s.logs[n].isFilled() {
			down = append(down, n)
		}
	}
	return len(down) == 0, down
}

// SubscriptionInfo is what GET /v1/subscriptions shows of one subscription.
type SubscriptionInfo struct {
	ID        uint64          `json:"id"`
	Predicate string          `json:"predicate"`
	Sources   []string        `json:"sources"`
	Transport string          `json:"transport"`
	Remote    string          `json:"remote"`
	Policy    string          `json:"policy"`
	Started   time.Time       `json:"started"`
	Counters  output.Counters `json:"counters"`
}

// Subscriptions describes every live subscription, oldest first.
func (s *Supervisor) Subscriptions() []SubscriptionInfo {
	s.mu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	sort.Slice(subs, func(i, j int) bool { return subs[i].Out.ID() < subs[j].Out.ID() })
	out := make([]SubscriptionInfo, 0, len(subs))
	for _, sub := range subs {
		out = append(out, SubscriptionInfo{
			ID: sub.Out.ID(), Predicate: predicateText(sub.Predicate), Sources: sub.Sources,
			Transport: sub.Transport, Remote: sub.Remote, Policy: sub.Out.Policy().String(),
			Started: sub.Started, Counters: sub.Out.Counters(),
		})
	}
	return out
}

// History returns the messages that source name still holds, oldest first.
func (s *Supervisor) History(ctx context.Context, name string) ([]*stream.Event, error) {
	r, ok := s.t().routers[name]
	if !ok {
		return nil, ErrUnknownSource
	}
	return r.History(ctx)
}

// TableSizes returns each router's subscriber-table size, for tests and metrics.
func (s *Supervisor) TableSizes() map[string]int {
	t := s.t()
	m := make(map[string]int, len(t.names))
	for _, n := range t.names {
		m[n] = t.routers[n].Len()
	}
	return m
}

// LastSeq is the newest sequence number of source name's router: where a reader by position
// that begins now starts (a new sink). 0 for an unknown source.
func (s *Supervisor) LastSeq(name string) uint64 {
	if r, ok := s.t().routers[name]; ok {
		return r.Counters().LastSeq
	}
	return 0
}
