package httpapi

import (
	"fmt"
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
	policy     output.Policy
	batch      bool
}

// maxListItems bounds the sources and resume ids one request may name.
const maxListItems = 256

// parseStreamParams reads where, source (repeatable or comma-separated), from (repeatable or
// comma-separated event ids, one per source; lastEventID, SSE's Last-Event-ID header, is used
// when from is absent), policy and batch.
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
	ids, param := splitList(q["from"]), "from"
	if len(ids) == 0 && lastEventID != "" {
		ids, param, p.fromHeader = splitList([]string{lastEventID}), "Last-Event-ID", true
	}
	if len(ids) > maxListItems {
		return bad("too many resume ids in %s: %d, at most %d", param, len(ids), maxListItems)
	}
	for _, id := range ids {
		src, seq, err := stream.ParseID(id)
		if err != nil {
			return bad("%s: %v", param, err)
		}
		if p.from == nil {
			p.from = make(map[string]uint64)
		}
		if _, dup := p.from[src]; dup {
			return bad("%s names source %q twice; give one id per source", param, src)
		}
		p.from[src] = seq
	}
	return p, nil
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
