package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/streamux/streamux/internal/predicate"
)

// checkRequest is the body of POST /v1/check; source may be a string or a list.
type checkRequest struct {
	Where  string          `json:"where"`
	Source json.RawMessage `json:"source"`
}

type checkCount struct {
	Matched int `json:"matched"`
	Of      int `json:"of"`
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
}

type costEstimate struct {
	Min uint64 `json:"min"`
	Max uint64 `json:"max"`
}

// check compiles a predicate and counts its matches in the history. A predicate that does not
// compile is a normal answer (200, "valid": false); only a malformed request is a 400.
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
	// The history's messages are read-only once routed, and their bodies their own
	// (stream.Message.Body), so reading them here while their router routes on is safe. in is
	// this request's: what it decodes of a message (its parser's values) is valid until the
	// next Reset, and nothing of it leaves the loop but the counts.
	var in predicate.Input
	for _, n := range names {
		evs, err := s.sup.History(r.Context(), n)
		if err != nil {
			continue
		}
		var c checkCount
		for _, ev := range evs {
			in.Reset(ev.Msg)
			if visible != nil {
				if ok, _ := visible.Match(&in); !ok {
					continue
				}
			}
			c.Of++
			if ok, _ := counted.Match(&in); ok {
				c.Matched++
			}
		}
		resp.Sources[n] = c
		resp.Matched += c.Matched
		resp.Of += c.Of
	}
	writeJSON(w, http.StatusOK, resp)
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
