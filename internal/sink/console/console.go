// Package console is the sink of type console: each event's JSON line on the server's standard
// output, as the seed's console sink printed what matched. The output's acceptance of the write
// is the acknowledgement.
package console

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/stream"
)

// Config is a console sink's own fields: none.
type Config struct{}

// Console writes event lines. Create it with New.
type Console struct {
	out io.Writer
	buf []byte
}

// New returns a console writing to out (standard output when nil).
func New(out io.Writer) *Console {
	if out == nil {
		out = os.Stdout
	}
	return &Console{out: out}
}

func init() {
	sink.Register("console", func(_ Config, env sink.Env) (*Console, error) { return New(env.Stdout), nil })
}

// Deliver writes evs, one JSON line each, in one write.
func (c *Console) Deliver(_ context.Context, evs []*stream.Event) error {
	c.buf = c.buf[:0]
	for _, ev := range evs {
		c.buf = append(c.buf, ev.Line()...)
	}
	if _, err := c.out.Write(c.buf); err != nil {
		return sink.Retry(fmt.Errorf("console: %w", err), 0)
	}
	return nil
}

// Close does nothing: the output is the process's.
func (c *Console) Close() error { return nil }
