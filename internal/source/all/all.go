// Package all links every source adapter into the binary: importing it runs each adapter
// package's init, which registers its type (source.Register). It is the one list of source types;
// adding a type is its own package and one line here. Types and packages, where the names differ:
// type http is package ingest (what it does: the API's ingest endpoint), and type websocket is
// package wsdial (it dials an upstream; transport/ws serves clients).
//
// Concurrency: nothing runs; registration happens in init, before main.
package all

import (
	_ "github.com/streamux/streamux/internal/source/amqp"         // type: amqp
	_ "github.com/streamux/streamux/internal/source/demo"         // type: demo
	_ "github.com/streamux/streamux/internal/source/ingest"       // type: http
	_ "github.com/streamux/streamux/internal/source/jetstream"    // type: jetstream
	_ "github.com/streamux/streamux/internal/source/kafka"        // type: kafka
	_ "github.com/streamux/streamux/internal/source/mqtt"         // type: mqtt
	_ "github.com/streamux/streamux/internal/source/nats"         // type: nats
	_ "github.com/streamux/streamux/internal/source/redis"        // type: redis
	_ "github.com/streamux/streamux/internal/source/redisstreams" // type: redis-streams
	_ "github.com/streamux/streamux/internal/source/wsdial"       // type: websocket
)
