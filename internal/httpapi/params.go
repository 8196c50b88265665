package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
)

// streamParams are the query parameters of GET /v1/stream, parsed but not yet checked against
// the configured sources or compiled.
type streamParams struct {
	where   string
	sources []string
	from    map[string]uint64
	// fromHeader says that from came from SSE's Last-Event-ID header, which a browser sends back
	// by itself: ids in it of sources the stream no longer reads are ignored, not refused.
	fromHeader bool
	// fromUnknown says that Last-Event-ID could not be read, wholly or in part: every source
	// the stream reads that it names no good id of resumes from resumeUnknown.
	fromUnknown bool
	policy      output.Policy
	batch       bool
}

// resumeUnknown, as a source's resume point, is after every id the source has given: its
// router answers as it does for an id from elsewhere (router.Backlog.Unknown), with a gap
// whose reason is unknown_id, then its whole history.
const resumeUnknown = math.MaxUint64

// maxListItems bounds the sources and resume ids one request may name.
const maxListItems = 256

// parseStreamParams reads where, source (repeatable or comma-separated), from (repeatable or
// comma-separated event ids, one per source; lastEventID, SSE's Last-Event-ID header, is used
// when from is absent), policy and batch.
//
// A browser sends Last-Event-ID back by itself, and its EventSource stops reconnecting for
// good on an error answer; so the header is never refused. An id in it that does not parse
// sets fromUnknown (the sources it might have named start over, after a gap), an id given
// twice counts as the earlier of the two (nothing is lost), and the number of ids is bounded
// by the size of the headers alone (a stream of many sources has ids as long).
func parseStreamParams(q url.Values, lastEventID string) (streamParams, *apiError) {
	var p streamParams
	bad := func(format string, args ...any) (streamParams, *apiError) {
		return streamParams{}, newError(http.StatusBadRequest, "invalid_parameter", fmt.Sprintf(format, args...))
	}
	if len(q["where"]) > 1 {
		return bad("where is given %d times; give one predicate", len(q["where"]))
	}
	for _, name := range [...]string{"policy", "batch"} {
		if len(q[name]) > 1 {
			return bad("%s is given %d times; give it once", name, len(q[name]))
		}
	}
	p.where = q.Get("where")
	p.sources = splitList(q["source"])
	if len(p.sources) > maxListItems {
		return bad("too many sources: %d, at most %d", len(p.sources), maxListItems)
	}
	for _, s := range p.sources {
		if s == "" {
			return bad("source must not be empty")
		}
	}
	var err error
	if p.policy, err = output.ParsePolicy(q.Get("policy")); err != nil {
		return bad("policy: %v", err)
	}
	if b := q.Get("batch"); b != "" {
		if p.batch, err = strconv.ParseBool(b); err != nil {
			return bad("batch must be true or false, not %q", b)
		}
	}
	ids := splitList(q["from"])
	if len(ids) == 0 && lastEventID != "" {
		p.fromHeader = true
		for _, id := range splitList([]string{lastEventID}) {
			src, seq, err := stream.ParseID(id)
			if err != nil {
				p.fromUnknown = true
				continue
			}
			if p.from == nil {
				p.from = make(map[string]uint64)
			}
			if old, dup := p.from[src]; !dup || seq < old {
				p.from[src] = seq
			}
		}
		return p, nil
	}
	if len(ids) > maxListItems {
		return bad("too many resume ids in from: %d, at most %d", len(ids), maxListItems)
	}
	for _, id := range ids {
		src, seq, err := stream.ParseID(id)
		if err != nil {
			return bad("from: %v", err)
		}
		if p.from == nil {
			p.from = make(map[string]uint64)
		}
		if _, dup := p.from[src]; dup {
			return bad("from names source %q twice; give one id per source", src)
		}
		p.from[src] = seq
	}
	return p, nil
}

// resumeFrom completes p.from once the stream's sources are known: a Last-Event-ID that
// could not be read (fromUnknown) leaves every source it names no good id of to start over.
func (p *streamParams) resumeFrom() {
	if !p.fromUnknown {
		return
	}
	if p.from == nil {
		p.from = make(map[string]uint64, len(p.sources))
	}
	for _, src := range p.sources {
		if _, ok := p.from[src]; !ok {
			p.from[src] = resumeUnknown
		}
	}
}

// splitList flattens repeated and comma-separated values, trimming spaces.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}
