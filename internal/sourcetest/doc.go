// Package sourcetest is the conformance suite that every source adapter runs against its real
// server (RabbitMQ, an upstream WebSocket server, NATS, Redis, MQTT, Kafka through kfake), and the
// helpers that the adapters' own tests share:
//
//   - Run(t, harness): the suite. A Harness tells it how to make a Source reading a fresh,
//     private stream and how to publish into that stream, drop the connection from the server
//     side and read the server's backlog.
//   - Collector: an Emit that stands in for the router and keeps what it is given.
//   - Start: runs a Source through source.Runner, records its state changes, and stops it when
//     the test ends.
//   - RequireAMQP, RequireServer, RequireCommand: find a server or a tool, or skip the test with
//     a clear message (fail instead when CI=true).
//   - Proxy: a TCP proxy to the real server whose Kill drops the connections through it, for
//     a fixture's Kill where the server has no command for that; PrefixFixture, the whole
//     fixture of a publish/subscribe stream made private by a name prefix (NATS, Redis, MQTT).
//
// Concurrency: a Collector and a Running are safe for concurrent use; the runner's goroutine
// calls Emit while the test goroutine reads. Every goroutine Start starts is waited for by Stop,
// which the test's cleanup calls, so goleak in TestMain sees none left.
//
// Waiting is always polling with a deadline (Eventually), never a bare sleep.
//
// To run the suite for a new adapter, write a Fixture in the adapter's tests: Source builds the
// adapter on a stream of its own (unique exchange, subject, topic, key; so that tests of other
// packages can run at the same time), Publish sends into that stream through the server's own
// client, Kill drops the adapter's connections from the server side (or returns
// errors.ErrUnsupported), Depth reads the server's backlog (or errors.ErrUnsupported). A
// fixture whose keys carry its private namespace (a subject prefix) also implements Keyer. Then:
//
//	func TestConformance(t *testing.T) {
//		sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true})
//	}
//
// The fixture_test.go of the amqp, nats, redis, mqtt and kafka packages, and wsdial's
// feed_test.go, are worked examples.
package sourcetest
