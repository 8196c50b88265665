// Package cluster runs streamux on several nodes over NATS JetStream (issue 18; API.md,
// "Several nodes"): every source has one replicated log, a JetStream stream, and the log's
// stream sequence is the event's seq, so that "<source>:<seq>" names the same message on
// every node and after restarts, a client resumes on any node, and a message ingested on
// one node reaches the clients of all.
//
// # How the server uses it
//
// The wiring is in internal/server (Connect) and internal/supervisor (cluster.go, replay.go).
// A node connects once (Connect, with the cluster: block, Config) and, per source:
//
//   - At start, Log(name).Ensure(ctx, firstSeq) makes or updates the source's stream, any
//     node, any number of times. firstSeq is one more than the highest sequence this node
//     has seen of the source (0 if none): a stream that must be made again (a reset) then
//     starts after the old one, and no id names two messages.
//   - On every node, a Reader (Log.Reader(from, epoch, 0)) feeds the source's router: from is
//     where the node's history should begin (Info().Last less the history size, plus one;
//     or the sequence after the last the router holds). Reader.Run hands items in order:
//     KindMessage, a *stream.Message with Source, Seq, Key, Headers, Body, BodyIsJSON and
//     Time set, which the router takes with its Seq as it is (in cluster mode the router
//     numbers nothing); KindSkip, sequences First..Last that the log no longer holds
//     (retention, a purge) or that no node can decode: a gap for every subscriber of the
//     source, as a message lost for its size is today; KindReset, the log was reset: the
//     router forgets its history, and a resume from an id of the old log is a gap. The
//     router's seq then goes on at the reset's First.
//   - For an upstream source (RabbitMQ, NATS, Kafka, MQTT, Redis, WebSocket, demo), each
//     node runs Lease(name).Campaign; its lead, on the one node that holds the lease, runs
//     the adapter with an emit that appends through a Writer (Log.Writer(ctx, lease.Held))
//     and acknowledges upstream only after Append returned (where the upstream can
//     redeliver: at least once into the log). Entry.ID is the upstream's own position
//     where it has one (a Kafka offset), so a redelivery within the duplicate window is
//     stored once. ErrLeaseLost or ErrStale while lease.Held() is false: return, the
//     lease is gone. ErrStale while it is still true: a previous holder's late append
//     landed; make a new Writer and append the rest. Campaign's onHolder is the status
//     event of a change of leader, and Lease.Holder the leader of GET /v1/sources. Other
//     nodes run nothing for the source but its Reader.
//   - HTTP ingest, on any node, calls Log.Append with the request's messages (Entry.ID: the
//     Idempotency-Key for one message, an envelope line's "id") and answers 2xx once it
//     returns nil, with the ids "<source>:<Ack.Seq>" (a Duplicate's Seq is the first
//     one's). The message reaches this node's clients through its Reader, like everyone
//     else's.
//   - A resume from an id that the node's history does not hold (older, or not read yet)
//     replays from the log with Log.Fetch(ctx, epoch, from, n), in spans, until it reaches
//     what the router holds, and then joins the router. Log.Info gives log_first_seq and
//     log_last_seq; lag is Info().Last less the router's last sequence.
//
// # Guarantees
//
// Every node reads the same messages in the same order under the same sequences, byte for
// byte (the envelope, below, is decoded the same everywhere). An Append that returned nil
// is stored on a majority of the replicas. Into the log a message is at least once where
// the upstream can redeliver; an ID de-duplicates within Config.DuplicateWindow. At most
// one node holds a lease at a time as the servers see it, and a holder stops by its own
// clock before the servers let another take over; the log's fencing refuses a stale
// holder's first message, and the one case it cannot prevent is reported (see Writer).
//
// # The log's layout
//
// Stream StreamName(prefix, source): prefix + EscapeName(source), whose one subject is the
// same string; EscapeName keeps letters, digits and '-', and writes every other byte ('.',
// '_') as '_' and two hex digits, so that no two sources share a stream. Leases: the KV
// bucket LeaseBucket(prefix), key EscapeName(source), value the holder's node name; a sink's
// lease (SinkLease) is the key "sinks." + EscapeName(sink) there. The nodes' small shared
// records (State: sinks' definitions and positions, sources' places upstream) are the KV
// bucket StateBucket(prefix), each written over the revision its writer read. A
// message's key, headers, body and time travel in its payload as an envelope (see
// envelope.go), never in NATS headers, which carry only Nats-Msg-Id and, from a Writer,
// Nats-Expected-Last-Sequence. A foreign message (published to the subject by something
// else) is read with its payload as the body and its NATS headers as headers.
//
// # Concurrency
//
// A Conn and a Log are safe for concurrent use (ingest requests append at once). A Reader
// and a Writer belong to one goroutine each: the source's reading goroutine, the lease
// holder's. Lease's TryAcquire, Renew, Release and Campaign belong to the goroutine that
// campaigns; Held and Holder may be called from any. Every blocking call takes a context,
// and its end stops it: Reader.Run and Campaign return when theirs ends (Campaign after
// lead has returned and the lease is released). Contexts are never kept in a struct. Each
// go statement says who waits for it: Campaign waits for lead; Connect waits for its dial,
// or leaves it to end by itself when ctx ends first; nothing else starts a goroutine (those
// of nats.go end with the Conn's Close, which comes last).
//
// What the logs cost and how fast they are on the development machine, and the evaluation
// of a JetStream server embedded in a single streamux: docs/cluster.md.
package cluster
