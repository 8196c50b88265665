// Package mqtt is the source of type mqtt: MQTT 5 subscriptions to topic filters (+ and #
// wildcards) on one broker, through github.com/eclipse/paho.golang. A message's topic is its
// key, its payload its body, its user properties its headers (several values of one name joined
// with ", "), with mqtt_content_type and mqtt_retain when the message has them.
//
// Each connection starts a clean session that ends with it, so what is published while
// streamux is not connected, or was in flight when a connection broke, is not delivered to it,
// as with the other sources' defaults. paho acknowledges a message when it hands it over; the
// source passes on everything handed over, even when the connection ends. A router that falls
// behind holds the broker back (at most 256 QoS 1 and 2 messages ahead of their acks; paho
// buffers QoS 0 ones), and the broker queues up to its own limit (Mosquitto's
// max_queued_messages) and then drops.
//
// Concurrency: Run is called by one source.Runner goroutine at a time and is the only goroutine
// that emits; paho's goroutines hand it messages through a channel and report the end of the
// connection. Counters may be called from any goroutine.
package mqtt
