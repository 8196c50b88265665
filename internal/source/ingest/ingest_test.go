package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
)

func parse(t testing.TB, ct, query string, body []byte) ([]*streamMessage, error) {
	s := New(Config{MaxBodyBytes: 1 << 16})
	r, err := http.NewRequest(http.MethodPost, "http://x/v1/sources/x/messages"+query, bytes.NewReader(body))
	if err != nil {
		t.Skip("not a request a client could send:", err)
	}
	r.Header.Set("Content-Type", ct)
	req, err := readRequest(r)
	if err != nil {
		return nil, err
	}
	msgs, err := s.parse(req, r, httptest.NewRecorder())
	out := make([]*streamMessage, len(msgs))
	for i, m := range msgs {
		out[i] = &streamMessage{Key: m.Key, Headers: m.Headers, Body: string(m.Body)}
	}
	return out, err
}

type streamMessage struct {
	Key     string
	Headers map[string]string
	Body    string
}

func TestParse(t *testing.T) {
	msgs, err := parse(t, "application/x-ndjson; charset=utf-8", "?key=k&header.A=1", []byte("1\r\n\n  2  \n"))
	if err != nil || len(msgs) != 2 || msgs[1].Body != "  2  " || msgs[0].Key != "k" || msgs[0].Headers["a"] != "1" {
		t.Fatalf("%v %+v", err, msgs)
	}
	msgs, err = parse(t, "application/json", "?envelope=1", []byte(`{"key":"x","body":{"a":1},"headers":{"h":"v"}}`))
	if err != nil || len(msgs) != 1 || msgs[0].Key != "x" || msgs[0].Body != `{"a":1}` || msgs[0].Headers["h"] != "v" {
		t.Fatalf("%v %+v", err, msgs)
	}
	for _, bad := range []string{`{"key":1}`, `{"body":"!!","body_encoding":"base64"}`, `{"body":1,"body_encoding":"hex"}`, `{} {}`, `[]`} {
		if _, err := parse(t, "application/json", "?envelope=true", []byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if _, err := parse(t, "text/plain", "", bytes.Repeat([]byte("x"), 1<<16+1)); err == nil || err.(*source.PublishError).Status != 413 {
		t.Fatalf("oversize: %v", err)
	}
}

// Every line of an NDJSON body is its message, byte for byte, whatever its length: lines of
// requests over the parser's first buffer (4 KiB) once carried the bytes of later lines, and
// Unicode spaces at either end were trimmed away.
func TestParseKeepsLines(t *testing.T) {
	spaces := []string{"", " ", "\t", "\u00a0", "\u0085", "\u2028", "\u3000", "\v", "\f"}
	for _, pad := range []int{10, 60, 100, 2000, 5000, 70000} {
		var body bytes.Buffer
		var want []string
		for i := range 50 {
			sp := spaces[i%len(spaces)]
			var line string
			if i%2 == 0 {
				line = fmt.Sprintf(`{"run":"R","i":%d,"phase":"data","pad":"%s"}`, i, strings.Repeat("x", pad+i))
			} else {
				line = fmt.Sprintf("%stext %d %s%s", sp, i, strings.Repeat("y", pad+i), sp)
			}
			want = append(want, line)
			body.WriteString(line)
			if i%3 == 0 {
				body.WriteString("\r\n")
			} else {
				body.WriteString("\n")
			}
		}
		s := New(Config{MaxBodyBytes: 16 << 20})
		r := httptest.NewRequest(http.MethodPost, "/v1/sources/x/messages", &body)
		r.Header.Set("Content-Type", "application/x-ndjson")
		req, err := readRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := s.parse(req, r, httptest.NewRecorder())
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != len(want) {
			t.Fatalf("pad %d: %d messages, want %d", pad, len(msgs), len(want))
		}
		for i, m := range msgs {
			if string(m.Body) != want[i] {
				t.Fatalf("pad %d: message %d is %.80q…, want %.80q…", pad, i, m.Body, want[i])
			}
		}
	}
}

// The lines of a body that is read whole are those of one that is streamed: bufio.ScanLines's.
func FuzzNextLine(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n\r\r\nlast\r"))
	f.Add([]byte(" \u00a0x\u3000 \n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got []string
		for rest := body; len(rest) > 0; {
			var line []byte
			line, rest = nextLine(rest)
			got = append(got, string(line))
		}
		var want []string
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, len(body)+1)
		for sc.Scan() {
			want = append(want, sc.Text())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("lines %q, want %q", got, want)
		}
	})
}

// No request body, however malformed, panics or loses its error.
func FuzzParse(f *testing.F) {
	f.Add("application/x-ndjson", "?envelope=true", []byte(`{"key":"a","body":1}`+"\n"+`{"body":"/w==","body_encoding":"base64"}`))
	f.Add("application/json", "", []byte(`{"a":1}`))
	f.Add("application/x-ndjson", "?key=%ff", []byte("\xff\n\n{"))
	f.Fuzz(func(t *testing.T, ct, query string, body []byte) {
		if len(query) > 0 && query[0] != '?' {
			query = "?" + query
		}
		msgs, err := parse(t, ct, query, body)
		if err != nil {
			if e, ok := err.(*source.PublishError); !ok || e.Status < 400 || e.Message == "" {
				t.Fatalf("error %#v", err)
			}
			return
		}
		if len(body) > 0 && len(msgs) == 0 && !bytes.Equal(bytes.TrimSpace(body), nil) && ct == "" {
			t.Fatal("a non-empty body published nothing")
		}
	})
}

// chunks returns body in pieces of at most n bytes, then end.
type chunks struct {
	body []byte
	n    int
	end  error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.body) == 0 {
		return 0, c.end
	}
	k := copy(p[:min(len(p), c.n)], c.body)
	c.body = c.body[k:]
	return k, nil
}

// A streamed body's lines are bufio.ScanLines's, read in any pieces; when the body fails
// instead of ending, what follows its last newline is not a line.
func FuzzStreamLines(f *testing.F) {
	f.Add([]byte("a\nb\r\n\nlast"), uint8(1), true)
	f.Add([]byte("a\nb\r\n\ncut"), uint8(3), false)
	f.Add([]byte("whole\n"), uint8(2), false)
	f.Fuzz(func(t *testing.T, body []byte, piece uint8, clean bool) {
		end := io.EOF
		if !clean {
			end = io.ErrUnexpectedEOF
		}
		br := &bodyReader{r: &chunks{body: body, n: int(piece%16) + 1, end: end}}
		sc := bufio.NewScanner(br)
		sc.Split(br.lines)
		var got []string
		for sc.Scan() {
			got = append(got, sc.Text())
		}

		whole := body
		if !clean {
			whole = body[:bytes.LastIndexByte(body, '\n')+1]
		}
		want := []string(nil)
		ws := bufio.NewScanner(bytes.NewReader(whole))
		for ws.Scan() {
			want = append(want, ws.Text())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("lines %q, want %q", got, want)
		}
		if err := sc.Err(); clean && err != nil || !clean && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("error %v; the body ended cleanly: %v", err, clean)
		}
	})
}

// A request that comes before the source runs (the server answers as its sources start) waits
// for it and is taken, rather than refused; one that comes after it stopped is refused at once.
func TestPublishBeforeRun(t *testing.T) {
	s := New(Config{})
	res := make(chan error, 1)
	go func() { // waited for below
		r := httptest.NewRequest(http.MethodPost, "/v1/sources/x/messages", strings.NewReader(`{"a":1}`))
		pub, err := s.Publish(t.Context(), r, httptest.NewRecorder())
		if err == nil && pub.N != 1 {
			err = fmt.Errorf("published %d", pub.N)
		}
		res <- err
	}()
	c := sourcetest.NewCollector()
	run := sourcetest.Start(t, s, c.Emit)
	if err := <-res; err != nil {
		t.Fatalf("a request before the source ran: %v", err)
	}
	c.WaitLen(t, 1, 5*time.Second)
	run.Stop()
	r := httptest.NewRequest(http.MethodPost, "/v1/sources/x/messages", strings.NewReader(`{"a":2}`))
	if _, err := s.Publish(t.Context(), r, httptest.NewRecorder()); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("after the source stopped: %v", err)
	}
}
