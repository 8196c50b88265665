package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sink"
)

// Who may do what with /v1/sinks (API.md, "Sinks"; docs/sinks.md, "Who may"):
//
//   - Making a sink (POST) needs the sinks right or admin (auth.Principal.CanCreateSinks).
//     The sink reads only what its creator may read: the server refuses a source outside the
//     creator's (403), and ANDs the creator's forced predicate into the sink's, as into a
//     stream's.
//   - An admin sees (GET) and removes (DELETE) every sink; a credential with the sinks right
//     only those it made, the others are unknown to it (404), as another's sink's name tells
//     it nothing it may know.

// Sinks is what /v1/sinks does with the server's sinks (the server implements it, with its
// configuration: the API does not know how a sink is made).
type Sinks interface {
	// Sinks describes every sink, sorted by name.
	Sinks() []sink.SinkInfo
	// Sink describes one; false if there is none.
	Sink(name string) (sink.SinkInfo, bool)
	// Create makes and starts the sink body describes (its configuration's fields, as JSON)
	// for by, bounded by what by may read, and keeps it across restarts. A *CreateError says
	// what to answer.
	Create(body []byte, by *auth.Principal) (name string, err error)
	// Delete stops and forgets the sink name; sink.ErrNotFound if there is none.
	Delete(name string) error
}

// CreateError is a sink that could not be made or removed, as /v1/sinks answers it.
type CreateError struct {
	Status  int
	Code    string
	Message string
}

func (e *CreateError) Error() string { return e.Message }

// sinkUser authenticates r and requires the right to make sinks (or admin), answering 401 or
// 403 otherwise.
func (s *Server) sinkUser(w http.ResponseWriter, r *http.Request) *auth.Principal {
	who := s.authenticate(w, r)
	if who == nil {
		return nil
	}
	if !who.CanCreateSinks() {
		writeError(w, forbidden("this endpoint needs a credential with the sinks right, or an admin one"))
		return nil
	}
	return who
}

// owns reports whether who may see and remove the sink si: an admin any, another only those it
// made.
func owns(who *auth.Principal, si sink.SinkInfo) bool {
	return who.Admin || si.Owner != "" && si.Owner == who.String()
}

func unknownSink(name string) *apiError {
	return newError(http.StatusNotFound, "unknown_sink", fmt.Sprintf("no sink named %q", name))
}

// sinks answers GET /v1/sinks: the delivery of every sink the caller may see.
func (s *Server) sinks(w http.ResponseWriter, r *http.Request) {
	who := s.sinkUser(w, r)
	if who == nil {
		return
	}
	out := []sink.SinkInfo{}
	if s.opt.Sinks != nil {
		for _, si := range s.opt.Sinks.Sinks() {
			if owns(who, si) {
				out = append(out, si)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// sink answers GET /v1/sinks/{name}.
func (s *Server) sink(w http.ResponseWriter, r *http.Request) {
	who := s.sinkUser(w, r)
	if who == nil {
		return
	}
	name := r.PathValue("name")
	if s.opt.Sinks != nil {
		if si, ok := s.opt.Sinks.Sink(name); ok && owns(who, si) {
			writeJSON(w, http.StatusOK, si)
			return
		}
	}
	writeError(w, unknownSink(name))
}

// maxSinkBody bounds a POST /v1/sinks body.
const maxSinkBody = 64 << 10

// createSink answers POST /v1/sinks: 201 {"id":name}.
func (s *Server) createSink(w http.ResponseWriter, r *http.Request) {
	who := s.sinkUser(w, r)
	if who == nil {
		return
	}
	if s.opt.Sinks == nil {
		writeError(w, newError(http.StatusServiceUnavailable, "no_sinks", "this server runs no sinks"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSinkBody))
	if err != nil {
		writeError(w, newError(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("a sink is described in at most %d bytes", maxSinkBody)))
		return
	}
	name, err := s.opt.Sinks.Create(body, who)
	if err != nil {
		ae := newError(http.StatusInternalServerError, "internal", err.Error())
		if ce, ok := errors.AsType[*CreateError](err); ok {
			ae = newError(ce.Status, ce.Code, ce.Message)
		} else if _, ok := errors.AsType[*predicate.Error](err); ok {
			ae = predicateError(err) // the where field's: 400 with the position, as for a stream
		}
		writeError(w, ae)
		return
	}
	s.log.Info("sink created", "sink", name, "by", who.String(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, map[string]string{"id": name})
}

// deleteSink answers DELETE /v1/sinks/{name}: 204, or 404.
func (s *Server) deleteSink(w http.ResponseWriter, r *http.Request) {
	who := s.sinkUser(w, r)
	if who == nil {
		return
	}
	name := r.PathValue("name")
	err := sink.ErrNotFound
	if s.opt.Sinks != nil {
		err = nil
		if !who.Admin {
			if si, ok := s.opt.Sinks.Sink(name); !ok || !owns(who, si) {
				err = sink.ErrNotFound
			}
		}
		if err == nil {
			err = s.opt.Sinks.Delete(name)
		}
	}
	if err != nil {
		ae := newError(http.StatusInternalServerError, "internal", err.Error())
		if errors.Is(err, sink.ErrNotFound) {
			ae = unknownSink(name)
		} else if ce, ok := errors.AsType[*CreateError](err); ok {
			ae = newError(ce.Status, ce.Code, ce.Message)
		}
		writeError(w, ae)
		return
	}
	s.log.Info("sink removed", "sink", name, "by", who.String(), "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}
