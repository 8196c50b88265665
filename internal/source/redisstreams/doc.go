// Package redisstreams is the source of type redis-streams: one Redis stream read through a
// consumer group (XREADGROUP), through github.com/redis/go-redis/v9. Each entry becomes one
// message; its fields become headers and the body (one field, body_field) or a JSON object of
// them all (fields: json); the entry id is the header redis_stream_id, and "<stream>:<id>" the
// message's UpstreamID.
//
// An entry is acknowledged (XACK) only once the router took its message, so what Redis keeps
// while streamux is down (the stream, until trimmed, and the group's pending entries) is
// delivered when it comes back: the consumer's own pending entries first, then those that other
// consumers of the group left idle longer than claim_idle (XAUTOCLAIM), then new ones. Delivery
// is at least once: after a crash, what was taken and not yet acknowledged, at most count
// entries, comes again, with redis_stream_redelivered "true".
//
// The connection settings (url, connect_timeout, tls) are the redis type's (redis.Conn).
//
// Concurrency: Run is called by one source.Runner goroutine at a time and is the only goroutine
// that uses its connection and emits. Counters may be called from any goroutine.
package redisstreams
