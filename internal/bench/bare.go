package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fastjson"
)

// bareServer is the ceiling streamux is compared with: the least a WebSocket fan-out server
// does. It takes the same NDJSON envelopes on the same ingest path and serves the same
// /v1/stream URLs, but it understands only `key == "X"` (an exact-key map) and the empty
// predicate (everyone), keeps no history, and evaluates nothing. Each connection has one reader
// and one writer goroutine, as issue 6 describes the loop; each message is encoded once into a
// gorilla PreparedMessage that every recipient shares. With join, a writer joins up to 64
// queued events, newline-separated, into one frame instead (what Centrifugo's batching does).
type bareServer struct {
	join     bool
	source   string
	upgrader websocket.Upgrader

	mu    sync.RWMutex
	byKey map[string]map[*bareConn]struct{}
	all   map[*bareConn]struct{}
	conns map[*bareConn]struct{}
	shut  bool           // serve is ending: connections that come now are closed at once
	wg    sync.WaitGroup // the stream handlers, which serve waits for

	pubMu  sync.Mutex // one ingest request at a time, as a source would
	parser fastjson.Parser
	seq    uint64
	enc    []byte

	dropped   atomic.Uint64
	delivered atomic.Uint64
}

type bareConn struct {
	ws   *websocket.Conn
	q    chan bareEvent
	done chan struct{}
}

type bareEvent struct {
	pm  *websocket.PreparedMessage
	raw []byte
}

func newBareServer(source string, join bool) *bareServer {
	return &bareServer{
		join: join, source: source,
		upgrader: websocket.Upgrader{
			ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{},
			CheckOrigin: func(*http.Request) bool { return true },
		},
		byKey: map[string]map[*bareConn]struct{}{},
		all:   map[*bareConn]struct{}{},
		conns: map[*bareConn]struct{}{},
	}
}

var keyEquals = regexp.MustCompile(`^\s*key\s*==\s*"([^"\\]*)"\s*$`)

func (s *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/stream":
		s.stream(w, r)
	case "/v1/sources/" + s.source + "/messages":
		s.ingest(w, r)
	case "/healthz":
		io.WriteString(w, `{"status":"ok"}`)
	default:
		http.NotFound(w, r)
	}
}

func (s *bareServer) stream(w http.ResponseWriter, r *http.Request) {
	where := r.URL.Query().Get("where")
	key, everything := "", where == ""
	if !everything {
		m := keyEquals.FindStringSubmatch(where)
		if m == nil {
			http.Error(w, `the bare server understands only key == "X" and the empty predicate`, http.StatusBadRequest)
			return
		}
		key = m[1]
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &bareConn{ws: ws, q: make(chan bareEvent, 1024), done: make(chan struct{})}
	s.mu.Lock()
	if s.shut {
		ws.Close()
	}
	s.conns[c] = struct{}{}
	if everything {
		s.all[c] = struct{}{}
	} else {
		if s.byKey[key] == nil {
			s.byKey[key] = map[*bareConn]struct{}{}
		}
		s.byKey[key][c] = struct{}{}
	}
	s.mu.Unlock()
	go func() { // the reader; the writer below waits for it
		defer close(c.done)
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}()
	s.write(c)
	s.mu.Lock()
	delete(s.conns, c)
	delete(s.all, c)
	if m := s.byKey[key]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(s.byKey, key)
		}
	}
	s.mu.Unlock()
	ws.Close()
	<-c.done
}

// write is the connection's writer: one frame per event, or up to 64 events joined per frame.
func (s *bareServer) write(c *bareConn) {
	var joined []byte
	for {
		var ev bareEvent
		select {
		case ev = <-c.q:
		case <-c.done:
			return
		}
		if !s.join {
			if c.ws.WritePreparedMessage(ev.pm) != nil {
				return
			}
			s.delivered.Add(1)
			continue
		}
		joined = append(joined[:0], ev.raw...)
		n := uint64(1)
	fill:
		for n < 64 {
			select {
			case ev = <-c.q:
				joined = append(append(joined, '\n'), ev.raw...)
				n++
			default:
				break fill
			}
		}
		if c.ws.WriteMessage(websocket.TextMessage, joined) != nil {
			return
		}
		s.delivered.Add(n)
	}
}

// ingest takes NDJSON envelopes {"key":…,"body":…} and offers each to the matching connections
// without waiting: a full queue drops the event. With ?stream=true each line is offered as soon
// as it has arrived, as streamux does.
func (s *bareServer) ingest(w http.ResponseWriter, r *http.Request) {
	var lines *bufio.Scanner
	if r.URL.Query().Get("stream") == "true" {
		lines = bufio.NewScanner(r.Body)
		lines.Buffer(nil, 64<<20) // streamux's lines may be as long as its max_body_bytes
	} else {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		lines = bufio.NewScanner(bytes.NewReader(body))
		lines.Buffer(nil, len(body)+1)
	}
	n := 0
	for lines.Scan() {
		line := lines.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := s.ingestLine(line, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n++
	}
	if err := lines.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, `{"accepted":`+strconv.Itoa(n)+"}")
}

func (s *bareServer) ingestLine(line []byte, now time.Time) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	v, err := s.parser.ParseBytes(line)
	if err != nil {
		return err
	}
	key := string(v.GetStringBytes("key"))
	s.seq++
	s.publish(key, s.encode(key, v.Get("body"), now))
	return nil
}

// encode lays the event out as streamux does, so that both send frames of the same size.
func (s *bareServer) encode(key string, body *fastjson.Value, now time.Time) []byte {
	b := s.enc[:0]
	b = append(b, `{"type":"message","id":"`...)
	b = append(b, s.source...)
	b = append(b, ':')
	b = strconv.AppendUint(b, s.seq, 10)
	b = append(b, `","source":"`...)
	b = append(b, s.source...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, s.seq, 10)
	b = append(b, `,"key":`...)
	b = strconv.AppendQuote(b, key)
	b = append(b, `,"time":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","headers":{},"body":`...)
	if body != nil {
		b = body.MarshalTo(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, '}')
	s.enc = b
	return bytes.Clone(b)
}

func (s *bareServer) publish(key string, raw []byte) {
	ev := bareEvent{raw: raw}
	if !s.join {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, raw)
		if err != nil {
			return
		}
		ev.pm = pm
	}
	s.mu.RLock()
	for _, set := range [2]map[*bareConn]struct{}{s.byKey[key], s.all} {
		for c := range set {
			select {
			case c.q <- ev:
			default:
				s.dropped.Add(1)
			}
		}
	}
	s.mu.RUnlock()
}

// serve runs the bare server on ln until ctx is done, then closes every connection.
func (s *bareServer) serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }() // waited for below
	select {
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	hs.Close()
	s.mu.Lock()
	s.shut = true
	for c := range s.conns {
		c.ws.Close() // the handlers then end
	}
	s.mu.Unlock()
	s.wg.Wait()
	<-done
	return nil
}
