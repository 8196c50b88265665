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
// Concurrency: Run is called by one source.Runner goroutine at a time and is the only goroutine
// that emits; nats.go's own goroutines only queue into its channel and signal the end of the
// connection. Counters may be called from any goroutine.
package nats
