package sse

import (
	"bufio"
	"bytes"
	"fmt"
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

// BenchmarkServe measures an SSE stream to a real HTTP client over loopback: one op is one
// event offered and read. Events are offered as fast as the queue takes them, so the writer
// joins what is queued into each write.
func BenchmarkServe(b *testing.B) {
	for _, sources := range []int{1, 3} {
		b.Run(fmt.Sprintf("sources=%d", sources), func(b *testing.B) {
			out := output.New(1, output.Disconnect, output.Limits{Events: 1 << 16, Bytes: 1 << 30})
			positions := map[string]uint64{}
			for i := range sources {
				positions[fmt.Sprintf("s%d", i)] = 0
			}
			opt := transport.Options{Heartbeat: time.Hour}
			done := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				done <- benchServe(w, r, out, positions, opt)
			}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			ev := stream.NewMessage(&stream.Message{Source: "s0", Seq: 1234567, Key: "k", Body: []byte(`{"pad":"` + strings.Repeat("x", 200) + `"}`), Time: time.Now()})
			read := make(chan struct{})
			go func() { // waited for below
				defer close(read)
				countBlocks(bufio.NewReaderSize(resp.Body, 64<<10), b.N+1) // the first is the stream's preamble
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
		})
	}
}

// countBlocks reads until n blank-line-terminated blocks came.
func countBlocks(r io.Reader, n int) {
	var buf [32 << 10]byte
	last := byte(0)
	for got := 0; got < n; {
		k, err := r.Read(buf[:])
		if err != nil {
			return
		}
		p := buf[:k]
		if last == '\n' && len(p) > 0 && p[0] == '\n' {
			got++
		}
		got += bytes.Count(p, []byte("\n\n"))
		if k > 0 {
			last = p[k-1]
		}
	}
}
