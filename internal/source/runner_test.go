package source

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoffDelay(t *testing.T) {
	b := Backoff{}.withDefaults()
	if b.Initial != 100*time.Millisecond || b.Max != 30*time.Second {
		t.Fatalf("defaults %+v", b)
	}
	for n := 1; n <= 20; n++ {
		want := min(b.Initial<<(n-1), b.Max)
		for i := 0; i < 50; i++ {
			if d := b.delay(n); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// flaky fails its first connections (twice alike, then with a panic, then for good), then runs
// until cancelled.
type flaky struct {
	mu    sync.Mutex
	tries int
}

func (f *flaky) Run(ctx context.Context, up func(), emit Emit) error {
	f.mu.Lock()
	f.tries++
	n := f.tries
	f.mu.Unlock()
	switch n {
	case 1, 2:
		return errors.New("refused")
	case 3:
		panic("adapter bug")
	case 4:
		return Permanent(errors.New("bad credentials"))
	}
	up()
	_ = emit(ctx, &stream.Message{Key: "k"})
	<-ctx.Done()
	return nil
}

// The runner reconnects through failures, a panic and a permanent error, reporting each state.
func TestRunnerStates(t *testing.T) {
	r := NewRunner("s", "test", &flaky{}, Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}, true, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var states []string
	got := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { // the runner; the test waits for it through done
		defer close(done)
		r.Run(ctx, func(ctx context.Context, m *stream.Message) error {
			got <- struct{}{}
			return nil
		}, func(s State, err error) {
			mu.Lock()
			states = append(states, string(s))
			mu.Unlock()
		})
	}()
	<-got
	if in := r.Info(); in.State != Up || in.Reconnects != 4 || in.LastError != "bad credentials" {
		t.Fatalf("info %+v", in)
	} else if in.LastErrorAt.IsZero() || in.LastErrorAt.After(in.Since) {
		t.Errorf("last error at %v, want a time before the source came up (%v)", in.LastErrorAt, in.Since)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	// The first state, connecting, is where a runner starts; changes from it are reported, and
	// so is a new error in the same state, but not a retry that failed as the last one did.
	want := "reconnecting reconnecting failed up stopped"
	if got := strings.Join(states, " "); got != want {
		t.Fatalf("states %q, want %q", got, want)
	}
}
