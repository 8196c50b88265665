// Command wslib measures WebSocket libraries for encode-once fan-out, as streamux does it: the
// same lean client reads a minimal broadcast/fan-out server built on each of gobwas/ws,
// gorilla/websocket, coder/websocket and lxzan/gws, in one run.
//
// Each server runs in its own subprocess (this binary, re-executed as `wslib server -lib NAME`),
// so that the CPU time and memory read from /proc/PID are that server's alone. The parent process
// is the client: it dials every server with the same WebSocket client (gobwas/ws for the
// handshake, then raw frame parsing in two epoll loops), and counts every text frame it receives
// and its latency (the payload carries its scheduled publication time).
//
// The servers take turns: each load scenario is cut into slices, and every library publishes for
// one slice in turn, so that noise from other work on the machine weighs on all of them.
//
// Usage:
//
//	go run . [-clients 1000] [-keys 100] [-broadcast-rates 40,200] [-fanout-rate 4000]
//	         [-slice 3s] [-slices 3] [-libs gobwas,gorilla,coder,gws] [-idle-libs gobwas-h]
//	         [-queue 1024] [-cpuprofile DIR]
//
// Variants of the gobwas server tell what streamux's own choices cost: gobwas-1w (one write per
// frame instead of one writev per batch), gobwas-nd (no write deadline) and gobwas-h (the writer
// on the HTTP handler's goroutine).
//
// README.md gives the results and the conclusion drawn from them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "server" {
		err = serverMain(os.Args[2:])
	} else {
		err = runMain(os.Args[1:])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "wslib:", err)
		os.Exit(1)
	}
}
