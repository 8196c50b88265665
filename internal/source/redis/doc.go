// Package redis is the source of type redis: Redis pub/sub channels (SUBSCRIBE) and channel
// patterns (PSUBSCRIBE), through github.com/redis/go-redis/v9. A message's channel is its key,
// its payload its body; a message that matched a pattern carries that pattern in the header
// redis_pattern.
//
// Redis pub/sub delivers at most once: what is published while streamux is not connected is
// not delivered to it, and a subscriber that reads too slowly is cut by the server (its
// client-output-buffer-limit for pubsub), after which the source reconnects. The source is
// drained all the time, clients or not.
//
// Conn (conn.go) is how a source reaches the server, URL, TLS and connect timeout, and the
// one-connection client that a Run uses; the redis-streams type (internal/source/redisstreams)
// shares it.
//
// Concurrency: Run is called by one source.Runner goroutine at a time and is the only goroutine
// that reads the connection and emits. Counters may be called from any goroutine.
package redis
