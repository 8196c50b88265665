package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/streamux/streamux/internal/predicate"
)

// apiError is the body of every error answered before a stream starts:
// {"error":{"code":"invalid_predicate","message":"...","position":12}}.
type apiError struct {
	Status   int    `json:"-"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Position *int   `json:"position,omitempty"`
	Accepted *int   `json:"accepted,omitempty"` // an ingest request's messages published before the error
	// IDs are, in a cluster, the ids the log gave the messages published before the error.
	IDs []string `json:"ids,omitempty"`
	// Problems are, of a configuration that does not validate (POST /v1/reload), every problem.
	Problems []string `json:"problems,omitempty"`

	retryAfter time.Duration // a 429's Retry-After, when known
}

func (e *apiError) Error() string { return e.Message }

func newError(status int, code, message string) *apiError {
	return &apiError{Status: status, Code: code, Message: message}
}

// predicateError turns a compile error into a 400.
func predicateError(err error) *apiError {
	var pe *predicate.Error
	if !errors.As(err, &pe) {
		return newError(http.StatusBadRequest, "invalid_predicate", err.Error())
	}
	msg := pe.Message
	switch pe.Code { // name the setting that moves the limit
	case predicate.CodeTooLong:
		msg += " (limits.predicate_max_bytes)"
	case predicate.CodeTooCostly:
		msg += " (limits.predicate_max_cost)"
	}
	e := newError(http.StatusBadRequest, pe.Code, msg)
	if pe.Position >= 0 {
		p := pe.Position
		e.Position = &p
	}
	return e
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
		w.Header().Set("Allow", "GET")
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfter(e.retryAfter))
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
