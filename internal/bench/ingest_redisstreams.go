package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/supervisor"
)

func init() { registerIngest("redis-streams", (*runner).ingestRedisStreams) }

// RedisURLEnv names the environment variable that gives the ingest scenario's Redis for
// -ingest-via redis-streams; unset, redis://127.0.0.1:6379.
const RedisURLEnv = "STREAMUX_BENCH_REDIS_URL"

// redisBenchGroup and redisBenchConsumer are the consumer group every round reads through,
// made anew (with the stream) before each, and the consumer's name in it.
const (
	redisBenchGroup    = "streamux-bench"
	redisBenchConsumer = "streamux-bench"
)

// ingestRedisStreams measures how fast entries leave a Redis stream through streamux (its
// redis-streams source with its defaults, run by the supervisor into a router with no
// subscriptions, in this process) and through a bare go-redis XREADGROUP and XACK loop with the
// same count, on the same server in the same run. Each of Rounds rounds preloads Messages
// entries into a new stream for each consumer in turn, then times connecting, making the
// group, reading and acknowledging them all.
func (r *runner) ingestRedisStreams(ctx context.Context, rep *Report) error {
	o := r.opt
	rep.columns = ingestColumns
	url := os.Getenv(RedisURLEnv)
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis-streams: %s: %w", RedisURLEnv, err)
	}
	admin := goredis.NewClient(opt)
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis-streams: %w (is Redis running at %s? Set %s)", err, opt.Addr, RedisURLEnv)
	}
	key := fmt.Sprintf("streamux-bench-%d", os.Getpid())
	defer func() { _ = admin.Del(context.Background(), key).Err() }()
	body := `{"ts":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", max(o.Size-40, 0)) + `"}`

	n := o.Messages
	err = r.ingestRounds(rep, "",
		func(int, string) error { return preloadRedisStream(ctx, admin, key, body, n) },
		func(int, string) error { return checkAllAcked(ctx, admin, key) },
		[]ingestConsumer{
			{kindStreamux, func() error { return consumeRedisStreamux(ctx, url, key, n) }},
			{"bare-ack", func() error { return consumeRedisBare(ctx, opt, key, n) }},
		})
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("Redis at %s; before each consumer's turn, a new stream of %s entries (fields body, %d bytes, and region) and no group",
			opt.Addr, commas(int64(o.Messages)), len(body)),
		fmt.Sprintf("bare-ack: go-redis alone: XGROUP CREATE, then XREADGROUP COUNT %d and an XACK of what it returned, in turn, until all are read", redisstreams.DefaultCount),
		fmt.Sprintf("streamux: the redis-streams source with its defaults (count %d, start 0) run by the supervisor into a router with no subscription, timed until it has acknowledged every entry; connecting is timed for both", redisstreams.DefaultCount),
		"CPU µs/msg is this process's CPU (the Redis server's is not counted) while consuming")
	return nil
}

// preloadRedisStream deletes key (the stream, and its group) and adds n entries to it anew.
func preloadRedisStream(ctx context.Context, c *goredis.Client, key, body string, n int) error {
	if err := c.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis-streams: delete %s: %w", key, err)
	}
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		pipe := c.Pipeline()
		for range min(chunk, n-i) {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"body", body, "region", "eu"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("redis-streams: add entries: %w", err)
		}
	}
	if l, err := c.XLen(ctx, key).Result(); err != nil || l != int64(n) {
		return fmt.Errorf("redis-streams: the stream holds %d of %d entries (%v)", l, n, err)
	}
	return nil
}

// checkAllAcked checks, after a consumer's turn, that its group has nothing pending: every
// entry read was acknowledged.
func checkAllAcked(ctx context.Context, c *goredis.Client, key string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := c.XPending(ctx, key, redisBenchGroup).Result()
		if err != nil {
			return fmt.Errorf("redis-streams: pending: %w", err)
		}
		if p.Count == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-streams: %d entries still pending", p.Count)
		}
		time.Sleep(time.Millisecond)
	}
}

// consumeRedisStreamux runs streamux's redis-streams source under a supervisor, as the server
// does, into a router with no subscriptions, until it has acknowledged n entries.
func consumeRedisStreamux(ctx context.Context, url, key string, n int) error {
	src, err := redisstreams.New(redisstreams.Config{
		Conn: redis.Conn{URL: url}, Stream: key, Group: redisBenchGroup, Consumer: redisBenchConsumer,
		Start: redisstreams.StartAll,
	})
	if err != nil {
		return err
	}
	acked := func() uint64 { return src.Counters().(redisstreams.Counters).Acked }
	return superviseUntil(ctx, redisstreams.Type, src, n, supervisor.Options{}, acked)
}

// consumeRedisBare is what a program with go-redis alone does: make the group, then read with
// XREADGROUP, count what it got, and acknowledge it with one XACK, until it has n.
func consumeRedisBare(ctx context.Context, opt *goredis.Options, key string, n int) error {
	c := goredis.NewClient(opt)
	defer c.Close()
	if err := c.XGroupCreateMkStream(ctx, key, redisBenchGroup, "0").Err(); err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	ids := make([]string, 0, redisstreams.DefaultCount)
	for got := 0; got < n; {
		streams, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: redisBenchGroup, Consumer: redisBenchConsumer, Streams: []string{key, ">"},
			Count: redisstreams.DefaultCount, Block: redisstreams.DefaultBlock,
		}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("read: %w", err)
		}
		ids = ids[:0]
		for _, st := range streams {
			for _, e := range st.Messages {
				ids = append(ids, e.ID)
			}
		}
		if len(ids) > 0 {
			if err := c.XAck(ctx, key, redisBenchGroup, ids...).Err(); err != nil {
				return fmt.Errorf("acknowledge: %w", err)
			}
		}
		got += len(ids)
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("consumed %d of %d", got, n)
		}
	}
	return nil
}
