// Package jetstream is the source of type jetstream: one JetStream stream read through a
// durable pull consumer, with github.com/nats-io/nats.go/jetstream, acknowledging each message
// only once its router took it, so that what streamux did not take is delivered again: after a
// reconnect, after a stop, after a crash. A message's subject is its key, its NATS headers are
// its headers (several values of one name joined with ", "), plus jetstream_stream,
// jetstream_seq (the stream sequence) and jetstream_delivered (1, or more for a redelivery);
// its UpstreamID is "<stream>:<sequence>".
//
// The consumer is named (consumer:), or streamux names it after the stream and the filter
// subject (nats.DefaultConsumer); it is made when it does not exist, with start, ack_wait,
// max_ack_pending, filter_subject and inactive_threshold, and read as it is when it does (but
// for the settings given explicitly, which it is changed to). What is kept while streamux is
// down is the stream's to say (its retention limits), and the consumer's (inactive_threshold).
//
// The reading itself is nats.StreamSource, in package nats, because a nats source that names a
// stream reads it the same way, over the same connection settings (nats.Conn): this package is
// the type's name, its configuration and its tests. Source, Config and Counters are nats's.
//
// Concurrency: Run is called by one source.Runner goroutine at a time. While it waits for the
// reading to end, the connection's subscription goroutine (nats.go's) emits and acknowledges
// each message, one at a time; Run ends the reading, waiting for the message under way, before
// it returns, so that no two goroutines ever emit for one source. Counters may be called from
// any goroutine.
package jetstream
