package router

import (
	"slices"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
)

// table is a router's subscriber table and its index; it belongs to the router goroutine.
//
// Subscriptions with the same predicate text form one group and share one evaluation per
// message. A group is filed under one of its predicate's atoms (predicate.Atom: a test every
// match passes) on the key or a header, so that a message visits only the groups filed under
// its own key and header values, plus the residual groups that have no such atom. A group whose
// predicate is nothing but that atom is decided by the lookup and is not evaluated at all. A
// predicate whose source atom excludes this router's source never matches here and is filed
// nowhere.
type table struct {
	source   string
	byID     map[uint64]*entry
	groups   map[string]*group // by predicate text
	byKey    map[string][]*group
	byHeader map[string]map[string][]*group // header name → value → groups
	residual []*group
}

type group struct {
	pred    *predicate.Predicate
	text    string
	all     bool // matches every message here: no evaluation
	decided bool // the index lookup decides it: no evaluation
	entries []*entry

	// Where the group is filed: under the key, under header, or (neither) residual or nowhere.
	onKey  bool
	header string
	values []string
	never  bool
}

type entry struct {
	out    *output.Output
	g      *group
	pos    int    // index in g.entries
	missed uint64 // matched but dropped since the last gap event (policy drop)
}

func newTable(source string) table {
	return table{
		source: source, byID: make(map[uint64]*entry), groups: make(map[string]*group),
		byKey: make(map[string][]*group), byHeader: make(map[string]map[string][]*group),
	}
}

func (t *table) len() int { return len(t.byID) }

// add files out under its predicate's group, creating and indexing the group if it is new.
func (t *table) add(out *output.Output, p *predicate.Predicate) {
	text := ""
	if p != nil {
		text = p.String()
	}
	g := t.groups[text]
	if g == nil {
		g = t.newGroup(p, text)
		t.groups[text] = g
		t.file(g)
	}
	e := &entry{out: out, g: g, pos: len(g.entries)}
	g.entries = append(g.entries, e)
	t.byID[out.ID()] = e
}

// remove forgets the subscription id, and its group when it was the last of it.
func (t *table) remove(id uint64) {
	e, ok := t.byID[id]
	if !ok {
		return
	}
	delete(t.byID, id)
	g := e.g
	last := len(g.entries) - 1
	g.entries[e.pos] = g.entries[last]
	g.entries[e.pos].pos = e.pos
	g.entries[last] = nil
	g.entries = g.entries[:last]
	if len(g.entries) == 0 {
		delete(t.groups, g.text)
		t.unfile(g)
	}
}

func (t *table) newGroup(p *predicate.Predicate, text string) *group {
	g := &group{pred: p, text: text}
	if p == nil || p.MatchesAll() {
		g.all = true
		return g
	}
	// Pick the atom to file under: the key first (no decoding at all), then a header.
	var pick *predicate.Atom
	others := 0
	for i := range p.Atoms() {
		a := &p.Atoms()[i]
		if a.Var == "source" {
			if !slices.Contains(a.Values, any(t.source)) {
				g.never = true
				return g
			}
			continue
		}
		others++
		if _, ok := stringValues(a.Values); !ok {
			continue
		}
		if pick == nil || (a.Var == "key" && pick.Var != "key") {
			if a.Var == "key" || a.Var == "headers" {
				pick = a
			}
		}
	}
	if p.Decided() && others == 0 {
		g.all = true // only source atoms, all satisfied here
		return g
	}
	if pick != nil {
		g.values, _ = stringValues(pick.Values)
		g.onKey = pick.Var == "key"
		if !g.onKey {
			g.header = pick.Path[0]
		}
		g.decided = p.Decided() && others == 1
	}
	return g
}

// stringValues returns the values, without repeats, if they are all strings.
func stringValues(vs []any) ([]string, bool) {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, true
}

// file puts g in the buckets it belongs to.
func (t *table) file(g *group) {
	switch {
	case g.never:
	case g.onKey:
		for _, v := range g.values {
			t.byKey[v] = append(t.byKey[v], g)
		}
	case g.header != "":
		m := t.byHeader[g.header]
		if m == nil {
			m = make(map[string][]*group)
			t.byHeader[g.header] = m
		}
		for _, v := range g.values {
			m[v] = append(m[v], g)
		}
	default:
		t.residual = append(t.residual, g)
	}
}

// unfile takes g out of its buckets.
func (t *table) unfile(g *group) {
	switch {
	case g.never:
	case g.onKey:
		for _, v := range g.values {
			if t.byKey[v] = without(t.byKey[v], g); len(t.byKey[v]) == 0 {
				delete(t.byKey, v)
			}
		}
	case g.header != "":
		m := t.byHeader[g.header]
		for _, v := range g.values {
			if m[v] = without(m[v], g); len(m[v]) == 0 {
				delete(m, v)
			}
		}
		if len(m) == 0 {
			delete(t.byHeader, g.header)
		}
	default:
		t.residual = without(t.residual, g)
	}
}

func without(gs []*group, g *group) []*group {
	if i := slices.Index(gs, g); i >= 0 {
		last := len(gs) - 1
		gs[i] = gs[last]
		gs[last] = nil
		return gs[:last]
	}
	return gs
}
