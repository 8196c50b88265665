package ws

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// BenchmarkHub measures the hub's writing: one op is one event offered to every connection and
// read by every client, over loopback.
func BenchmarkHub(b *testing.B) {
	for _, conns := range []int{1, 100} {
		for _, batch := range []bool{false, true} {
			b.Run(fmt.Sprintf("conns=%d/batch=%v", conns, batch), func(b *testing.B) { benchHub(b, conns, batch) })
		}
	}
}

func benchHub(b *testing.B, conns int, batch bool) {
	opt := transport.Options{Batch: batch, Heartbeat: time.Hour}
	hub := NewHub(opt)
	outs := make(chan *output.Output, conns)
	var served sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := output.New(1, output.Disconnect, output.Limits{Events: 1 << 16, Bytes: 1 << 30})
		served.Add(1)
		defer served.Done()
		benchServe(hub, w, r, out, opt, func() { outs <- out })
	}))
	defer func() {
		srv.Close()
		hub.Close()
	}()
	var read sync.WaitGroup
	list := make([]*output.Output, 0, conns)
	for range conns {
		nc, br, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		list = append(list, <-outs)
		r := io.Reader(nc)
		if br != nil {
			r = io.MultiReader(br, nc)
		}
		read.Add(1)
		go func() { // waited for below
			defer read.Done()
			countEvents(bufio.NewReaderSize(r, 64<<10), b.N)
		}()
	}
	ev := stream.NewMessage(&stream.Message{Source: "s", Seq: 1, Key: "k", Body: []byte(`{"pad":"` + strings.Repeat("x", 200) + `"}`), Time: time.Now()})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, out := range list {
			for !out.Offer(ev) {
				runtime.Gosched()
			}
		}
	}
	read.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*conns)/b.Elapsed().Seconds(), "deliveries/s")
	for _, out := range list {
		out.Close(output.ErrShutdown)
	}
	served.Wait()
}

// countEvents reads frames until n events came, one a frame or one a line of a frame.
func countEvents(r *bufio.Reader, n int) {
	var buf [32 << 10]byte
	for got := 0; got < n; {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		if h.OpCode != ws.OpText {
			if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
				return
			}
			continue
		}
		got++
		for left := h.Length; left > 0; {
			k, err := r.Read(buf[:min(left, int64(len(buf)))])
			if err != nil {
				return
			}
			got += bytes.Count(buf[:k], []byte{'\n'})
			left -= int64(k)
		}
	}
}
