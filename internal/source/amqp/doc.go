// Package amqp is the RabbitMQ source: it consumes a queue bound to an exchange with
// github.com/rabbitmq/amqp091-go and yields each delivery as a stream.Message (routing key →
// Key, application headers and message properties → Headers, body as received).
//
// By default the queue is server-named, exclusive and auto-delete, so it lives exactly as long as
// the connection and nothing piles up in the broker while streamux is not running; the source
// drains it continuously whether or not any client listens. The topology (exchange, queue,
// bindings) is declared again on every connect.
//
// A named queue may be a classic queue, a quorum queue or a stream (Config.QueueType). A stream
// keeps its messages whoever reads them, and RabbitMQ keeps no reader's place over AMQP 0-9-1,
// so the source keeps its own: the offset of the last message its router took, in memory
// across reconnects and, given a source.Store (source.Resuming; the data directory's record),
// across restarts. A keeper goroutine records it (keeper.go), and the source never passes on
// more than the prefetch window beyond what is recorded. docs/sources/amqp.md describes it all.
//
// Concurrency: a Source is run by one source.Runner; Run owns the connection and its one
// consuming channel for the duration of the call and releases both before returning. Emit blocks
// while the router is busy; the prefetch window (basic.qos) then fills and the broker holds the
// rest, so the client's buffer stays bounded. A stream's keeper goroutine is started and waited
// for by the consuming loop. Counters may be called from any goroutine.
package amqp
