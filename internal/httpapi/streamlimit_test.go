package httpapi_test

import (
	"net/url"
	"strings"
	"testing"
)

// max_body_bytes bounds a streamed line without its ending: a line of exactly the limit is
// taken whether it ends in "\n", "\r\n" or a "\r" that ends the body (it was refused with 413
// for the last two, found by the conservation test).
func TestStreamLineAtTheLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()
	line := strings.Repeat("x", 1<<20) // "in" takes 1 MiB
	p := e.streamPost("", "application/x-ndjson")
	p.send(line+"\n"+line+"\r\n"+line+"\r", true)
	if a := p.answer(t); a.status != 200 || !strings.Contains(a.raw, `"accepted":3`) {
		t.Fatalf("three lines at the limit: %d %s", a.status, a.raw)
	}
	// One byte over, whatever room the line ending leaves: 413.
	for _, end := range []string{"\n", "\r\n", ""} {
		p := e.streamPost("", "application/x-ndjson")
		p.send(line+"x"+end, true)
		if a := p.answer(t); a.status != 413 {
			t.Fatalf("a line of the limit and a byte, ending %q: %d %s", end, a.status, a.raw)
		}
	}
}
