// Package kafka is the source of type kafka: the records of one or more Kafka topics, through
// github.com/twmb/franz-go, optionally as a member of a consumer group. A record's key is the
// message's key, its value the body, its headers the headers (several values of one name
// joined with ", "), with kafka_topic, kafka_partition, kafka_offset and kafka_timestamp added.
//
// Without a group the source reads every partition from its end (or its start, with start:
// earliest) each time it connects, keeping nothing in Kafka. With a group it commits the offsets
// of the records its router has taken, so that a restart resumes after them.
//
// franz-go reconnects to brokers by itself: the source goes reconnecting only when no broker
// answers at connect time or Kafka reports an error that franz-go does not retry.
//
// Concurrency: Run is called by one source.Runner goroutine at a time and is the only goroutine
// that polls and emits. Counters may be called from any goroutine.
package kafka
