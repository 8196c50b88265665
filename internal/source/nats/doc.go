// Package nats is the source of type nats: core NATS subscriptions to one or more subjects
// (wildcards allowed), optionally in a queue group, through github.com/nats-io/nats.go. A
// message's subject is its key, its NATS headers are its headers (several values of one name
// joined with ", "), and a reply subject, if any, is the header nats_reply.
//
// Core NATS delivers at most once: what is published while streamux is not connected is not
// delivered to it, as with the amqp source's default exclusive queue. The source is drained
// all the time; it holds up to Config.Pending messages while its router is busy, and past that
// NATS drops them, counted in Counters.Dropped.
//
// With Config.Stream set, the source reads that JetStream stream through a durable pull consumer
// instead, acknowledging each message once its router took it: it is then a StreamSource, the
// source of type jetstream (package internal/source/jetstream, which has no code of its own),
// with its subject as the consumer's filter. Conn, the connection's settings, is shared by both
// types.
//
// Concurrency: Run is called by one source.Runner goroutine at a time. Reading core NATS, it is
// the only goroutine that emits; nats.go's own goroutines only queue into its channel and
// signal the end of the connection. Reading a stream, nats.go's subscription goroutine emits
// and acknowledges, one message at a time, while Run waits, and Run ends that reading before it
// returns (StreamSource). Counters may be called from any goroutine.
package nats
