// Package mqtt is the source of type mqtt: MQTT 5 subscriptions to topic filters (+ and #
// wildcards) on one broker, through github.com/eclipse/paho.golang. A message's topic is its
// key, its payload its body, its user properties its headers (several values of one name joined
// with ", "), with mqtt_content_type and mqtt_retain when the message has them.
//
// By default each connection starts a clean session that ends with it, so what is published
// while streamux is not connected, or was in flight when a connection broke, is not delivered to
// it, as with the other sources' defaults. paho acknowledges a message when it hands it over;
// the source passes on everything handed over, even when the connection ends. A router that
// falls behind holds the broker back (at most ReceiveMaximum QoS 1 and 2 messages ahead of
// their acks; paho buffers QoS 0 ones), and the broker queues up to its own limit
// (Mosquitto's max_queued_messages) and then drops.
//
// With clean_start false the source resumes a persistent session: one client id, which the
// broker keeps, with its subscriptions and the QoS 1 and 2 messages that came for it, for
// session_expiry after each connection ends. A QoS 1 or 2 message is then acknowledged (PUBACK,
// or PUBREC) only once emit returned nil for it, and before the next is passed on, so that a
// stop leaves what the router did not take to the broker, which sends it again to the next
// connection; the source is source.Acknowledging. paho acknowledges a message itself when its
// callback returns, whatever the callback did, so the source gives paho a session state
// (laterAcks: paho's in-memory state.State, kept across the source's connections) whose Ack does
// nothing, and acknowledges through the state itself. After a kill, what the router took and
// whose acknowledgement had not reached the broker comes again, flagged DUP (counted as
// redelivered): at most ReceiveMaximum messages.
//
// The connection paho reads and writes is a packetConn: reads buffered (paho reads a packet in
// three reads or more), and each packet written in one write (paho writes it in pieces).
//
// Concurrency: Run is called by one source.Runner goroutine at a time. In a clean session it is
// the only goroutine that emits: paho's goroutines hand it messages through a channel and report
// the end of the connection. With a persistent session, paho's callback goroutine (one per
// connection, waited for by Run) emits and acknowledges, one message at a time, and Run waits
// for the end of the connection or of ctx; on a stop it sends the DISCONNECT once the callback
// has acknowledged what it passed on. Counters may be called from any goroutine.
package mqtt
