package router

import (
	"slices"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// table is a router's subscriber table and its index; it belongs to the router goroutine.
//
// Subscriptions with the same predicate text form one group and share one evaluation per
// message. A group is filed under one of its predicate's atoms (predicate.Atom: a test every
// match passes): on the key if it has one (no decoding at all), else on a header, else on a body
// path, the atom with the fewest values. A message visits the groups filed under its own key,
// header values and body values, plus the residual groups that have no such atom. Per message,
// each header name and each body path that some group is filed under is read once, and looked
// up once in a map of its values: the cost grows with the distinct names and paths, not with the
// subscriptions. A group whose predicate is nothing but that atom is decided by the lookup and is
// not evaluated at all. A predicate whose source atom excludes this router's source, or with an
// atom `in []`, never matches here and is filed nowhere.
//
// Counters stay what evaluating every predicate would make them: a message that lacks the
// header or body field of an atom fails the atom with an error, which makes the predicate an
// error (counted) unless another conjunct is false; so the groups filed under that field are
// then evaluated (the decided ones simply counted), though none of them can match.
type table struct {
	source    string
	byID      map[uint64]*entry
	groups    map[string]*group // by predicate text
	byKey     map[string][]*group
	byHeader  map[string]*headerIndex // by header name
	bodies    []*bodyIndex            // one per body path that groups are filed under
	bodyPaths map[string]*bodyIndex   // by path, as CEL source
	residual  []*group
}

// headerIndex is the groups filed under one header name.
type headerIndex struct {
	byValue map[string][]*group
	all     []*group // every group filed here, for the messages without the header
}

// bodyIndex is the groups filed under one body path.
type bodyIndex struct {
	field   *predicate.BodyField
	byValue map[predicate.Key][]*group
	all     []*group // every group filed here, for the messages without the field
}

type group struct {
	pred    *predicate.Predicate
	text    string
	all     bool // matches every message here: no evaluation
	decided bool // the index lookup decides it: no evaluation
	entries []*entry

	// Where the group is filed: under the key, a header or a body path, or (none) residual or
	// nowhere.
	onKey  bool
	header string
	values []string
	body   *predicate.BodyField
	keys   []predicate.Key
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
		byKey: make(map[string][]*group), byHeader: make(map[string]*headerIndex),
		bodyPaths: make(map[string]*bodyIndex),
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
	// Pick the atom to file under: the key first (no decoding at all), then a header, then the
	// body atom with the fewest values (the likeliest to rule a message out).
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
		if len(a.Values) == 0 {
			g.never = true // in []: false, whatever the other conjuncts are
			return g
		}
		others++
		if pick == nil || rank(a) < rank(pick) || a.Var == "body" && pick.Var == "body" && len(a.Keys()) < len(pick.Keys()) {
			pick = a
		}
	}
	if p.Decided() && others == 0 {
		g.all = true // only source atoms, all satisfied here
		return g
	}
	if pick != nil {
		switch pick.Var {
		case "key":
			g.onKey = true
			g.values = stringValues(pick.Values)
		case "headers":
			g.header = pick.Path[0]
			g.values = stringValues(pick.Values)
		default:
			g.body = predicate.NewBodyField(pick.Path)
			g.keys = pick.Keys()
		}
		g.decided = p.Decided() && others == 1
	}
	return g
}

// rank orders the variables an atom may be on by how cheap they are to read.
func rank(a *predicate.Atom) int {
	switch a.Var {
	case "key":
		return 0
	case "headers":
		return 1
	}
	return 2
}

// stringValues returns the strings among the values, without repeats. The key and headers are
// strings, which equal no value of another type (CEL's == is false there, not an error), so
// the other values can be left out: `key in [1, "a"]` is `key == "a"`.
func stringValues(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if s, ok := v.(string); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
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
		h := t.byHeader[g.header]
		if h == nil {
			h = &headerIndex{byValue: make(map[string][]*group)}
			t.byHeader[g.header] = h
		}
		for _, v := range g.values {
			h.byValue[v] = append(h.byValue[v], g)
		}
		h.all = append(h.all, g)
	case g.body != nil:
		path := g.body.String()
		b := t.bodyPaths[path]
		if b == nil {
			b = &bodyIndex{field: g.body, byValue: make(map[predicate.Key][]*group)}
			t.bodyPaths[path] = b
			t.bodies = append(t.bodies, b)
		}
		g.body = b.field // one reader per path, whichever group came first
		for _, k := range g.keys {
			b.byValue[k] = append(b.byValue[k], g)
		}
		b.all = append(b.all, g)
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
		h := t.byHeader[g.header]
		for _, v := range g.values {
			if h.byValue[v] = without(h.byValue[v], g); len(h.byValue[v]) == 0 {
				delete(h.byValue, v)
			}
		}
		if h.all = without(h.all, g); len(h.all) == 0 {
			delete(t.byHeader, g.header)
		}
	case g.body != nil:
		path := g.body.String()
		b := t.bodyPaths[path]
		for _, k := range g.keys {
			if b.byValue[k] = without(b.byValue[k], g); len(b.byValue[k]) == 0 {
				delete(b.byValue, k)
			}
		}
		if b.all = without(b.all, g); len(b.all) == 0 {
			delete(t.bodyPaths, path)
			t.bodies = slices.DeleteFunc(t.bodies, func(x *bodyIndex) bool { return x == b })
		}
	default:
		t.residual = without(t.residual, g)
	}
}

// visitFields does, for one message, the part of the index lookup past the key: it visits the
// groups filed under the message's header and body values (one map lookup per header name and
// body path), and evaluates (or, when decided, counts as failed) the groups whose header or
// body field the message lacks, so that their errors are counted as evaluation would count them.
func (r *Router) visitFields(m *stream.Message, ev *stream.Event) {
	t := &r.table
	for name, h := range t.byHeader {
		v, ok := m.Headers[name]
		switch {
		case !ok:
			r.fail(h.all)
		case h.byValue[v] != nil:
			r.visit(h.byValue[v], ev)
		}
	}
	for _, b := range t.bodies {
		k, ok, err := b.field.Key(&r.input)
		switch {
		case err != nil:
			r.fail(b.all)
		case ok:
			if gs := b.byValue[k]; gs != nil {
				r.visit(gs, ev)
			}
		}
	}
}

// fail accounts for groups whose index atom failed with an error on this message: none of them
// matches, and each is an error unless another of its conjuncts is false. A decided group has no
// other conjunct; the others are evaluated to know.
func (r *Router) fail(gs []*group) {
	for _, g := range gs {
		if g.decided {
			r.evalFailed(g)
			continue
		}
		r.match(g) // false: the failed atom sees to it
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
