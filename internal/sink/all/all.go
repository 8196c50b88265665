// Package all links every sink type into the binary: importing it runs each destination
// package's init, which registers its type (sink.Register). It is the one list of sink types.
package all

import (
	_ "github.com/streamux/streamux/internal/sink/amqp"    // type: amqp
	_ "github.com/streamux/streamux/internal/sink/console" // type: console
	_ "github.com/streamux/streamux/internal/sink/kafka"   // type: kafka
	_ "github.com/streamux/streamux/internal/sink/nats"    // type: nats
	_ "github.com/streamux/streamux/internal/sink/redis"   // type: redis
	_ "github.com/streamux/streamux/internal/sink/webhook" // type: webhook
)
