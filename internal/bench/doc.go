// Package bench is `streamux-bench`: the load generator and report of DESIGN.md's "How well".
//
// A run starts the servers it measures, opens real WebSocket clients over loopback, drives a
// source, shows a progress line on stderr and prints a table (or JSON). The servers run, by
// default, as subprocesses of the same binary (`streamux-bench server`, which runs streamux
// through internal/server, as the streamux command does), so that the CPU time and resident
// memory read from /proc/PID are the server's alone, not the clients'. A bare
// WebSocket fan-out loop (bare.go), the ceiling, runs beside it with its own clients, and the
// servers take turns under the same load (interleave.go), so that other work on the machine
// weighs on each alike. Scenarios:
//
//	fanout     C clients, client i reading key == "k<i mod K>", at a published rate
//	broadcast  C clients that all match every message
//	idle       C clients at rest: server RSS, heap and goroutines per connection
//	match      N subscriptions in one router, in process: ns per routed message
//	ingest     RabbitMQ into streamux's amqp source against bare amqp091-go consumers
//	churn      clients connect and leave, Cycles times: goroutines and heap before and after
//	slow       fast clients alone, then with one client that never reads
//	cluster    streamux alone against clusters of one and three nodes on NATS JetStream:
//	           one log hop's latency and CPU, the most a source appends, fan-out (cluster.go)
//
// End-to-end latency is the time from when a message was due to be published (the "ts" field,
// in Unix nanoseconds, that the publisher puts in every body) to when a client read it.
// Everything is bounded in count and time, and all traffic stays on loopback.
//
// Concurrency: Run owns every goroutine it starts (clients' readers, the publisher, the
// servers run in process, the progress line) and has waited for all of them when it returns.
package bench
