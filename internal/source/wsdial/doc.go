// Package wsdial is the upstream WebSocket source: it dials a WebSocket server with
// github.com/gorilla/websocket, sends the configured on_connect frames (a subscribe request, as
// upstream feeds need), and yields every text or binary message it receives as a
// stream.Message, its body as received and its key read from a JSON path in the payload.
//
// A dead upstream is detected by ping: every ping_interval the source sends a ping, and a
// connection on which nothing (no message, no pong) arrives for ping_interval + pong_timeout
// ends with an error, so that source.Runner reconnects. A message larger than read_limit is
// discarded and counted, and the connection kept: the next messages still flow.
//
// Concurrency: a Source is run by one source.Runner; Run owns its connection for the duration of
// the call. Inside Run, the calling goroutine reads and one pinger goroutine, started and waited
// for by Run, writes pings (gorilla's WriteControl may be called concurrently with the reader).
// Counters may be called from any goroutine.
package wsdial
