// Package sinktest holds what the tests of the sink types share: a Server whose one source the
// test feeds, a sink Runner run on it as the server runs one (Run), messages of every shape to
// deliver (Messages) and to compare with what the broker holds (Check), and a Gate, a TCP
// proxy in front of a real broker that can play one that is down.
//
// Concurrency: a Server, a Running and a Gate are safe for concurrent use; every goroutine they
// start is waited for by the test's cleanup, so goleak in TestMain sees none left.
package sinktest
