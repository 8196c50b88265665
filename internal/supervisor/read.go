package supervisor

import (
	"context"
	"fmt"
	"time"

	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/stream"
)

var _ sink.Reader = (*Supervisor)(nil)

// Read returns up to max messages of source after the position after, oldest first, for a
// reader by position (a sink): from the router's history, or in a cluster from the log where
// the history does not hold them. What neither holds any more comes as a gap in front of the
// messages (reason history); a position ahead of the source (from elsewhere) as a gap of reason
// unknown_id, after which the page goes on from the oldest message held.
func (s *Supervisor) Read(ctx context.Context, source string, after uint64, max int) (sink.Page, error) {
	r, ok := s.t().routers[source]
	if !ok {
		return sink.Page{}, fmt.Errorf("%w %q", ErrUnknownSource, source)
	}
	b, err := r.Read(ctx, after, max)
	if err != nil {
		return sink.Page{}, err
	}
	if s.logs != nil && b.Missed > 0 && !b.Unknown {
		return s.readLog(ctx, source, after, max, b.Last)
	}
	page := sink.Page{Newest: b.Last, Next: after}
	switch {
	case b.Unknown:
		page.Events = append(page.Events, stream.NewGap(source, b.Missed, stream.GapUnknownID))
		page.Next = b.Last - uint64(len(b.Events))
	case b.Missed > 0:
		page.Events = append(page.Events, stream.NewGap(source, b.Missed, stream.GapHistory))
		page.Next = after + b.Missed
	}
	page.Events = append(page.Events, b.Events...)
	if n := len(b.Events); n > 0 {
		page.Next = b.Events[n-1].Seq()
	}
	return page, nil
}

// readLog is Read from source's log, where the history no longer holds what follows after.
func (s *Supervisor) readLog(ctx context.Context, source string, after uint64, max int, newest uint64) (sink.Page, error) {
	c := s.logs[source]
	items, err := c.read.Fetch(ctx, c.epochNow(), after+1, max)
	if err != nil && len(items) == 0 {
		return sink.Page{}, fmt.Errorf("read the log of %q: %w", source, err)
	}
	page := sink.Page{Newest: newest, Next: after}
	for _, it := range items {
		switch it.Kind {
		case cluster.KindSkip:
			page.Events = append(page.Events, stream.NewGap(source, it.Last-it.First+1, stream.GapHistory))
			page.Next = it.Last
		case cluster.KindMessage:
			m := it.Msg
			m.Time = m.Time.Truncate(time.Millisecond) // as the router keeps it
			page.Events = append(page.Events, stream.NewMessage(m))
			page.Next = m.Seq
		}
	}
	return page, nil
}
