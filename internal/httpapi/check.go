package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// checkRequest is the body of POST /v1/check; source may be a string or a list.
type checkRequest struct {
	Where  string          `json:"where"`
	Source json.RawMessage `json:"source"`
}

type checkCount struct {
	Matched int `json:"matched"`
	Of      int `json:"of"`
	// Failed counts the messages of Of on which the predicate failed to evaluate (a missing
	// field, a wrong type, a result that is not a bool): a stream counts them in errors.
	Failed int `json:"failed"`
}

// checkFailure is the first evaluation error of a check, at the message ID.
type checkFailure struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// checkWarning is something in a predicate that compiles and runs but probably does not do what
// was meant, as the history shows: an equality test that CEL makes always false.
type checkWarning struct {
	Message  string `json:"message"`
	Position int    `json:"position"`
}

type checkResponse struct {
	Valid bool          `json:"valid"`
	Error *apiError     `json:"error,omitempty"`
	Cost  *costEstimate `json:"cost,omitempty"`
	// Atoms are the tests every match must pass, which the index files the predicate under;
	// Decided says they are the whole predicate, so matching needs no evaluation.
	Atoms   []string              `json:"atoms,omitempty"`
	Decided bool                  `json:"decided,omitempty"`
	Sources map[string]checkCount `json:"sources,omitempty"`
	Matched int                   `json:"matched"`
	Of      int                   `json:"of"`
	// Failed and FirstError tell a predicate that fails on the history: Failed of Of messages
	// could not be evaluated, the first of them with FirstError.
	Failed     int           `json:"failed"`
	FirstError *checkFailure `json:"first_error,omitempty"`
	// Warnings are comparisons that the history shows to be always false.
	Warnings []checkWarning `json:"warnings,omitempty"`
	// Stopped says why the counts do not cover the whole history, when they do not.
	Stopped *checkStop `json:"stopped,omitempty"`
}

// checkStop is where and why a check stopped before the end of the history: Code
// predicate_too_costly when one evaluation went over limits.predicate_max_cost at the message
// ID (a stream with the predicate would be cut there; the counts are of the messages before
// it), check_too_costly when the call's work reached limits.check_max_cost (the counts are of
// the messages up to ID).
type checkStop struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id"`
}

type costEstimate struct {
	Min uint64 `json:"min"`
	Max uint64 `json:"max"`
}

// check compiles a predicate and counts its matches in the history. A predicate that does not
// compile is a normal answer (200, "valid": false); only a malformed request is a 400. The count
// is bounded (CheckLimits.MaxCost, and each evaluation by the predicate's own cost limit), stops
// when the client leaves or the server drains, and each credential (each address without
// authentication) may call it at CheckLimits.Rate.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	var req checkRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		writeError(w, newError(http.StatusBadRequest, "invalid_request", `body must be {"where":"...","source":["..."]}: `+err.Error()))
		return
	}
	names, err := sourceList(req.Source)
	if err != nil {
		writeError(w, newError(http.StatusBadRequest, "invalid_request", err.Error()))
		return
	}
	who := s.authenticate(w, r)
	if who == nil {
		return
	}
	if aerr := s.checks.admit(who, r); aerr != nil {
		writeError(w, aerr)
		return
	}
	names, aerr := s.readable(who, names)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	names = distinct(names) // a source named twice is counted once
	pred, aerr := s.compile(req.Where)
	if aerr != nil {
		writeJSON(w, http.StatusOK, checkResponse{Error: aerr})
		return
	}
	// The counts are of what this caller would see: its forced predicate applies to both, so
	// that a tenant learns nothing of the messages it may not read, not even how many there are.
	visible, aerr := s.forced(who)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	counted, aerr := s.narrow(who, pred)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	min, max := pred.Cost()
	resp := checkResponse{Valid: true, Cost: &costEstimate{min, max}, Sources: map[string]checkCount{}, Decided: pred.Decided()}
	for _, a := range pred.Atoms() {
		resp.Atoms = append(resp.Atoms, a.String())
	}
	// The count ends with the request, and with the server: a shutdown does not wait for it.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.drainCtx, cancel)()
	sc := scan{visible: visible, counted: counted, budget: s.checks.lim.MaxCost, comparisons: pred.Comparisons()}
	sc.mismatches = make([]mismatch, len(sc.comparisons))
	s.checks.running.Add(1)
	defer s.checks.running.Add(-1)
	for _, n := range names {
		evs, err := s.sup.History(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c := sc.count(ctx, evs)
		resp.Sources[n] = c
		resp.Matched += c.Matched
		resp.Of += c.Of
		resp.Failed += c.Failed
		if sc.stopped != nil || ctx.Err() != nil {
			break
		}
	}
	switch {
	case s.drainCtx.Err() != nil:
		writeError(w, newError(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down"))
	case ctx.Err() != nil:
		// The client has gone: no one to answer.
	default:
		resp.Stopped = sc.stopped
		resp.FirstError = sc.firstError
		for i, m := range sc.mismatches {
			if m.n > 0 {
				c := &sc.comparisons[i]
				resp.Warnings = append(resp.Warnings, checkWarning{Message: c.Warning(m.holds, m.n, resp.Of), Position: c.Position})
			}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// scan counts a check's matches in the history, within its budget.
type scan struct {
	visible *predicate.Predicate // the credential's forced predicate, or nil
	counted *predicate.Predicate // the client's, narrowed by the forced one
	budget  uint64               // CheckLimits.MaxCost
	spent   uint64
	stopped *checkStop // set once the scan must stop
	// firstError is the counted predicate's first evaluation error.
	firstError *checkFailure
	// comparisons are the predicate's equality tests of body fields with constants, and
	// mismatches, for each, the messages that hold the field with another type.
	comparisons []predicate.Comparison
	mismatches  []mismatch
	// in is the scan's own. The history's messages are read-only once routed, and their bodies
	// their own (stream.Message.Body), so reading them here while their router routes on is
	// safe; what in decodes of a message (its parser's values) is valid until the next Reset,
	// and nothing of it leaves the scan but the counts.
	in predicate.Input
}

// mismatch counts the messages in which a comparison's field had a type none of its constants
// has, and names that type as the first of them held it.
type mismatch struct {
	n     int
	holds string
}

// count counts the matches among evs, until the end, ctx is done, or the scan must stop.
func (sc *scan) count(ctx context.Context, evs []*stream.Event) checkCount {
	var c checkCount
	for _, ev := range evs {
		if ctx.Err() != nil {
			return c
		}
		sc.in.Reset(ev.Msg)
		cost := uint64(1)
		ok, err := true, error(nil)
		if sc.visible != nil {
			ok, err = sc.visible.Match(&sc.in)
			cost += evalCost(sc.visible, &sc.in)
		}
		if err == nil && ok {
			ok, err = sc.counted.Match(&sc.in)
			cost += evalCost(sc.counted, &sc.in)
			if !errors.Is(err, predicate.ErrTooCostly) {
				c.Of++
				if err != nil {
					c.Failed++
					if sc.firstError == nil {
						sc.firstError = &checkFailure{ID: eventID(ev), Message: err.Error()}
					}
				}
				for i := range sc.comparisons {
					cost++
					if holds, bad := sc.comparisons[i].Mismatch(&sc.in); bad {
						m := &sc.mismatches[i]
						if m.n == 0 {
							m.holds = holds
						}
						m.n++
					}
				}
			}
			if ok {
				c.Matched++
			}
		}
		if errors.Is(err, predicate.ErrTooCostly) {
			sc.stopped = &checkStop{Code: predicate.CodeTooCostly, ID: eventID(ev),
				Message: err.Error() + " (limits.predicate_max_cost): a stream with this predicate is cut at this message"}
			return c
		}
		sc.spent += cost + uint64(sc.in.Decoded())
		if sc.spent >= sc.budget {
			sc.stopped = &checkStop{Code: "check_too_costly", ID: eventID(ev),
				Message: fmt.Sprintf("this check reached its cost limit of %d (limits.check_max_cost): the counts are of the messages up to this one", sc.budget)}
			return c
		}
	}
	return c
}

// eventID is ev's id, "<source>:<seq>".
func eventID(ev *stream.Event) string { return ev.Source + ":" + strconv.FormatUint(ev.Seq(), 10) }

// evalCost is what the last Match of p on in cost: what it measured, or its estimate's bound.
func evalCost(p *predicate.Predicate, in *predicate.Input) uint64 {
	if p.Measured() {
		return in.Cost()
	}
	_, max := p.Cost()
	return max
}

func sourceList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("source must be a string or a list of strings")
	}
	return many, nil
}

// distinct returns names without repeats, in the order of their first appearance.
func distinct(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
