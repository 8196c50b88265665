package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The server side: one library per process. Every server is the same apart from the library:
// a registry of connections by key group, a publisher that encodes each event once (in the form
// the library can share across recipients) and offers it to every recipient's bounded queue, and
// an HTTP control interface for the parent:
//
//	GET  /ws?key=K                   a WebSocket client of key group K
//	POST /start?mode=M&rate=R&keys=N publish R events/s, to all (M=broadcast) or to one of N key groups in turn (M=fanout)
//	                                 (&profile=FILE: and write a CPU profile of the server to FILE until /stop)
//	POST /stop                       stop publishing; answers with what was published (pubResult)
//	POST /gc                         runtime.GC and debug.FreeOSMemory; answers with memory figures (memStats)
//	GET  /writes                     how many write system calls the server counted so far

// event is one published event, shared by all its recipients: the JSON payload and whatever
// form of it the library writes (a complete frame, a prepared message, a broadcaster).
type event struct {
	payload []byte
	frame   []byte // gobwas: the whole frame, header and payload
	prep    any    // gorilla: *websocket.PreparedMessage; gws: *gws.Broadcaster
}

// member is one connection as the publisher sees it.
type member interface {
	// send offers ev to the connection without blocking; false if its queue is full and the
	// event was dropped.
	send(ev *event) bool
}

// library is what differs between the servers.
type library interface {
	// serve upgrades r and serves the connection, registering it with s, until it ends. It may
	// return before the connection ends if the library reads it from a goroutine of its own.
	serve(s *server, w http.ResponseWriter, r *http.Request, key int)
	// prepare encodes ev in the form the library shares across recipients.
	prepare(ev *event)
	// release is called once ev was offered to every recipient.
	release(ev *event)
}

// libraries are the servers this program can run, by name.
// The constructors take the length of the connections' queues and the server.
var libraries = map[string]func(queueLen int, s *server) library{
	"gobwas":    func(n int, _ *server) library { return &gobwasLib{queueLen: n, join: true} },
	"gobwas-1w": func(n int, _ *server) library { return &gobwasLib{queueLen: n, join: false} },
	"gobwas-nd": func(n int, _ *server) library { return &gobwasLib{queueLen: n, join: true, noDeadline: true} },
	"gobwas-h":  func(n int, _ *server) library { return &gobwasLib{queueLen: n, join: true, inHandler: true} },
	"gorilla":   func(n int, _ *server) library { return newGorillaLib(n) },
	"coder":     func(n int, _ *server) library { return &coderLib{queueLen: n} },
	"gws":       newGWSLib,
}

// writeTimeout bounds every write; a client that stops reading is cut after it.
const writeTimeout = 10 * time.Second

// server holds the connections of one library's server and publishes to them.
type server struct {
	lib library

	mu     sync.RWMutex
	all    []member
	groups map[int][]member

	// writes counts the write system calls of the servers that count them (gobwas), so that
	// frames per write can be told; the others write one frame per call.
	writes atomic.Uint64

	pubMu   sync.Mutex
	stop    chan struct{} // closes to stop the running publisher
	done    chan pubResult
	profile *os.File // the CPU profile being written, if any
}

// add registers m in key group key.
func (s *server) add(m member, key int) {
	s.mu.Lock()
	s.all = append(s.all, m)
	s.groups[key] = append(s.groups[key], m)
	s.mu.Unlock()
}

// remove unregisters m.
func (s *server) remove(m member, key int) {
	s.mu.Lock()
	s.all = without(s.all, m)
	s.groups[key] = without(s.groups[key], m)
	s.mu.Unlock()
}

func without(ms []member, m member) []member {
	for i, x := range ms {
		if x == m {
			last := len(ms) - 1
			ms[i] = ms[last]
			ms[last] = nil
			return ms[:last]
		}
	}
	return ms
}

// pubResult is what a publisher did.
type pubResult struct {
	Published uint64 `json:"published"` // events published
	Attempted uint64 `json:"attempted"` // deliveries offered to queues: one per event and recipient
	Dropped   uint64 `json:"dropped"`   // deliveries dropped because the recipient's queue was full
}

// eventSize is the size of every event's JSON payload.
const eventSize = 200

// encodeEvent writes event seq of key group key, scheduled at ts (Unix nanoseconds), as a JSON
// object of exactly eventSize bytes.
func encodeEvent(seq uint64, key int, ts int64) []byte {
	b := make([]byte, 0, eventSize)
	b = append(b, `{"type":"message","key":"k`...)
	b = strconv.AppendInt(b, int64(key), 10)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"body":{"user":"u-1234","action":"update","pad":"`...)
	for len(b) < eventSize-3 {
		b = append(b, 'x')
	}
	return append(b, `"}}`...)
}

// publish publishes rate events a second until stop closes. Every event is due at a fixed time
// from the start; one that is late is published at once, so a publisher that falls behind shows
// as latency, and its payload carries the time it was due.
func (s *server) publish(mode string, rate float64, keys int, stop <-chan struct{}) pubResult {
	var res pubResult
	period := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var recipients []member
	for seq := uint64(0); ; seq++ {
		due := start.Add(time.Duration(seq) * period)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		select {
		case <-stop:
			return res
		default:
		}
		key := int(seq % uint64(keys))
		ev := &event{payload: encodeEvent(seq, key, due.UnixNano())}
		s.lib.prepare(ev)
		s.mu.RLock()
		if mode == "broadcast" {
			recipients = append(recipients[:0], s.all...)
		} else {
			recipients = append(recipients[:0], s.groups[key]...)
		}
		s.mu.RUnlock()
		for _, m := range recipients {
			res.Attempted++
			if !m.send(ev) {
				res.Dropped++
			}
		}
		clear(recipients)
		s.lib.release(ev)
		res.Published++
	}
}

// memStats is what /gc answers: the Go runtime's view of the server's memory after a GC.
type memStats struct {
	HeapAlloc  uint64 `json:"heap_alloc"`  // live heap objects
	HeapInuse  uint64 `json:"heap_inuse"`  // heap spans in use
	StackInuse uint64 `json:"stack_inuse"` // goroutine stacks
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"`
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		key, _ := strconv.Atoi(r.URL.Query().Get("key"))
		s.lib.serve(s, w, r, key)
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mode := q.Get("mode")
		rate, err1 := strconv.ParseFloat(q.Get("rate"), 64)
		keys, err2 := strconv.Atoi(q.Get("keys"))
		if (mode != "broadcast" && mode != "fanout") || err1 != nil || rate <= 0 || err2 != nil || keys <= 0 {
			http.Error(w, "bad start", http.StatusBadRequest)
			return
		}
		s.pubMu.Lock()
		defer s.pubMu.Unlock()
		if s.stop != nil {
			http.Error(w, "already publishing", http.StatusConflict)
			return
		}
		if path := q.Get("profile"); path != "" {
			f, err := os.Create(path)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s.profile = f
		}
		s.stop, s.done = make(chan struct{}), make(chan pubResult, 1)
		stop, done := s.stop, s.done
		go func() { done <- s.publish(mode, rate, keys, stop) }()
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		s.pubMu.Lock()
		defer s.pubMu.Unlock()
		if s.stop == nil {
			http.Error(w, "not publishing", http.StatusConflict)
			return
		}
		close(s.stop)
		res := <-s.done
		s.stop, s.done = nil, nil
		if s.profile != nil {
			pprof.StopCPUProfile()
			_ = s.profile.Close()
			s.profile = nil
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("GET /writes", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, s.writes.Load())
	})
	mux.HandleFunc("POST /gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.mu.RLock()
		conns := len(s.all)
		s.mu.RUnlock()
		_ = json.NewEncoder(w).Encode(memStats{
			HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys,
			Goroutines: runtime.NumGoroutine(), Conns: conns,
		})
	})
	return mux
}

// serverMain runs one library's server: it prints "listening ADDR" on standard output and
// serves until its standard input ends (the parent closes it, or dies).
func serverMain(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	name := fs.String("lib", "gobwas", "the library to serve with")
	queueLen := fs.Int("queue", 1024, "events each connection's queue holds before it drops")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mk, ok := libraries[*name]
	if !ok {
		return fmt.Errorf("no library %q", *name)
	}
	s := &server{groups: map[int][]member{}}
	s.lib = mk(*queueLen, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(0)
	}()
	hs := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// queue is a connection's bounded queue of events: the publisher pushes without blocking, the
// connection's one writer takes everything queued at once. It holds no memory while empty
// before its first use.
type queue struct {
	mu    sync.Mutex
	items []*event
	max   int
	wake  chan struct{} // holds a token when items went from empty to not empty
}

func newQueue(max int) *queue { return &queue{max: max, wake: make(chan struct{}, 1)} }

// push queues ev, or drops it if the queue is full.
func (q *queue) push(ev *event) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, ev)
	first := len(q.items) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take waits until events are queued or done closes, and returns every queued event; the
// queue goes on in dst's array (the writer hands back the previous batch, so two arrays
// alternate). It returns nil once done is closed.
func (q *queue) take(dst []*event, done <-chan struct{}) []*event {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			out := q.items
			clear(dst)
			q.items = dst[:0]
			q.mu.Unlock()
			return out
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-done:
			return nil
		}
	}
}
