package rawconn_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/rawconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns the two ends of a loopback TCP connection: the accepted one through
// rawconn.Listener, the dialled one plain.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := rawconn.Listener{Listener: tl}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestWrapped(t *testing.T) {
	server, _ := pair(t)
	if _, plain := server.(*net.TCPConn); plain && runtime.GOOS == "linux" {
		t.Fatal("the accepted connection was not wrapped")
	}
	// What the rest of the server asks of a TCP connection is still there.
	if _, ok := server.(syscall.Conn); !ok {
		t.Error("no SyscallConn")
	}
	if _, ok := server.(interface{ CloseWrite() error }); !ok {
		t.Error("no CloseWrite")
	}
	if _, ok := server.(io.ReaderFrom); !ok {
		t.Error("no ReadFrom")
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rawconn.Wrap(a) != a {
		t.Fatal("a net.Pipe end was wrapped")
	}
}

// TestBothWays sends more than the sockets' buffers hold both ways at once, in pieces of odd
// sizes, so that reads find the socket empty and writes find it full, and checks every byte.
func TestBothWays(t *testing.T) {
	server, client := pair(t)
	up, down := make([]byte, 8<<20), make([]byte, 8<<20)
	rand.Read(up)
	rand.Read(down)

	errs := make(chan error, 3)
	go func() { // the server's writes
		for p := down; len(p) > 0; {
			n, err := server.Write(p[:min(len(p), 300_001)])
			if err != nil {
				errs <- err
				return
			}
			p = p[n:]
		}
		errs <- nil
	}()
	go func() { // the client's writes
		_, err := client.Write(up)
		errs <- err
	}()
	go func() { // the client's reads
		got, err := io.ReadAll(io.LimitReader(client, int64(len(down))))
		if err == nil && !bytes.Equal(got, down) {
			err = errors.New("the client read other bytes than the server wrote")
		}
		errs <- err
	}()
	got := make([]byte, 0, len(up))
	buf := make([]byte, 7_777)
	for len(got) < len(up) {
		n, err := server.Read(buf)
		if err != nil {
			t.Fatalf("server read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, up) {
		t.Fatal("the server read other bytes than the client wrote")
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEOF(t *testing.T) {
	server, client := pair(t)
	client.Write([]byte("last"))
	client.Close()
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil", got, err)
	}
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
}

// checkOpError checks that err is what net's own calls return: a *net.OpError for op that
// matches want.
func checkOpError(t *testing.T, err error, op string, want error) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != op || !errors.Is(err, want) {
		t.Fatalf("err = %#v (%v); want a *net.OpError %q matching %v", err, err, op, want)
	}
}

func TestReadDeadline(t *testing.T) {
	server, _ := pair(t)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := server.Read(make([]byte, 10))
	checkOpError(t, err, "read", os.ErrDeadlineExceeded)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("err = %v; want a timeout", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("Read gave up after %v, before its deadline", waited)
	}
	// A deadline in the past ends a read waiting already (net/http stops its background read
	// so).
	server.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := server.Read(make([]byte, 10)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	server.SetReadDeadline(time.Unix(1, 0))
	checkOpError(t, <-done, "read", os.ErrDeadlineExceeded)
}

func TestWriteDeadline(t *testing.T) {
	server, _ := pair(t) // the client never reads
	server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := server.Write(make([]byte, 64<<20))
	checkOpError(t, err, "write", os.ErrDeadlineExceeded)
	if n >= 64<<20 {
		t.Fatalf("Write wrote all %d bytes to a peer that does not read", n)
	}
}

func TestClosed(t *testing.T) {
	server, client := pair(t)
	server.Close()
	_, err := server.Read(make([]byte, 1))
	checkOpError(t, err, "read", net.ErrClosed)
	_, err = server.Read(nil)
	checkOpError(t, err, "read", net.ErrClosed)
	_, err = server.Write([]byte("x"))
	checkOpError(t, err, "write", net.ErrClosed)

	// A peer that has gone: writing to it fails with the kernel's error, not a hang.
	client.Close()
	server2, client2 := pair(t)
	client2.(*net.TCPConn).SetLinger(0) // close with a reset
	client2.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = server2.Write(make([]byte, 1<<16))
		time.Sleep(time.Millisecond)
	}
	var se *os.SyscallError
	if !errors.As(werr, &se) || !(errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE)) {
		t.Fatalf("write to a reset peer: %v; want ECONNRESET or EPIPE in an *os.SyscallError", werr)
	}
	checkOpError(t, werr, "write", se.Err)
}

// TestHTTP serves HTTP on a rawconn.Listener: a request with a body, its answer, and a hijack,
// as a WebSocket upgrade does.
func TestHTTP(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		w.Write(body)
	})
	mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nhijacked")
		rw.Flush()
	})
	hs := &http.Server{Handler: mux}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(rawconn.Listener{Listener: tl}) }()
	defer func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	base := "http://" + tl.Addr().String()

	body := bytes.Repeat([]byte("streamux "), 100_000)
	res, err := c.Post(base+"/echo", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("echo: %d bytes, %v; want the %d sent", len(got), err, len(body))
	}
	res, err = c.Get(base + "/hijack")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(got) != "hijacked" {
		t.Fatalf("hijack: %q, %v", got, err)
	}
}

// TestReadWriteAllocs: a read and a write allocate nothing, as net's own do.
func TestReadWriteAllocs(t *testing.T) {
	server, client := pair(t)
	msg, buf := []byte("ping"), make([]byte, 16)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := server.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip; want 0", allocs)
	}
}

// TestOrderThroughTheSocket: what a goroutine did before writing to a socket happened before
// what the reader does after reading those bytes, and the race detector (go test -race) must
// know it, through a raw call at either end.
func TestOrderThroughTheSocket(t *testing.T) {
	server, client := pair(t)
	var before int
	for i, ends := range []struct {
		name   string
		to, at net.Conn
	}{{"raw write, plain read", server, client}, {"plain write, raw read", client, server}} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			before++
			if _, err := ends.to.Write([]byte("x")); err != nil {
				t.Error(err)
			}
		}()
		if _, err := io.ReadFull(ends.at, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if before != i+1 { // a race here, were the socket's order unknown to the detector
			t.Fatalf("%s: before = %d after the read; want %d", ends.name, before, i+1)
		}
		<-done
	}
}

// TestLargeWrite writes more than a raw write takes at once, which goes through net's own.
func TestLargeWrite(t *testing.T) {
	server, client := pair(t)
	big := make([]byte, 1<<20)
	rand.Read(big)
	go func() {
		if _, err := server.Write(big); err != nil {
			t.Error(err)
		}
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read %v; want the %d bytes written", err, len(big))
	}
}
