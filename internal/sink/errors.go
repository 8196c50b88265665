package sink

import (
	"errors"
	"time"
)

// RetryError is a delivery that failed for a reason a later attempt may not meet (a timeout, a
// 5xx, a 429, a broker that is away): the runner tries again after its backoff, or after After
// when the destination said when (Retry-After).
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// PermanentError is a delivery that the destination refused for good (a webhook's 4xx other than
// 429, a redirect, a bad subject): sending it again would be refused again. The sink is
// failed, with the error as its last, until it is changed or removed.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }

// Retry wraps err as a RetryError that asks to wait after, 0 for the runner's backoff.
func Retry(err error, after time.Duration) error { return &RetryError{Err: err, After: after} }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfter is the wait a RetryError asks for, 0 for none.
func RetryAfter(err error) time.Duration {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}

// ErrMoved is what a shared PositionStore's Save returns when the position it would replace is
// no longer the one this runner loaded or saved last: another node delivers the sink now (in a
// cluster, the sink's lease passed to it while this node was cut off or paused). The runner
// stops at once, and never moves the position back.
var ErrMoved = errors.New("the sink's position was moved by another node")
