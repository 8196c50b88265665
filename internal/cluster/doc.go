// Package cluster runs streamux on several nodes over NATS JetStream: one replicated log per
// source, whose stream sequence is the event's seq on every node (issue 18; API.md, "Several
// nodes").
//
// This file's first version holds the configuration (Config, strictly decoded by Decode),
// the mapping of source names to stream names (EscapeName, StreamName), and the envelope
// that carries a message's key, headers, body and time in the log byte for byte.
package cluster
