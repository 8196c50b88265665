package ndjson

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// BenchmarkServe measures an NDJSON stream to a real HTTP client over loopback: one op is one
// event offered and read. Events are offered as fast as the queue takes them, so the writer
// joins what is queued into each write.
func BenchmarkServe(b *testing.B) {
	out := output.New(1, output.Disconnect, output.Limits{Events: 1 << 16, Bytes: 1 << 30})
	opt := transport.Options{Heartbeat: time.Hour}
	done := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done <- benchServe(w, r, out, opt)
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	ev := stream.NewMessage(&stream.Message{Source: "s", Seq: 1234567, Key: "k", Body: []byte(`{"pad":"` + strings.Repeat("x", 200) + `"}`), Time: time.Now()})
	read := make(chan struct{})
	go func() { // waited for below
		defer close(read)
		countLines(bufio.NewReaderSize(resp.Body, 64<<10), b.N)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for !out.Offer(ev) {
			runtime.Gosched()
		}
	}
	<-read
	b.StopTimer()
	out.Close(output.ErrShutdown)
	<-done
}

func countLines(r io.Reader, n int) {
	var buf [32 << 10]byte
	for got := 0; got < n; {
		k, err := r.Read(buf[:])
		if err != nil {
			return
		}
		got += bytes.Count(buf[:k], []byte{'\n'})
	}
}
