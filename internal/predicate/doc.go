// Package predicate compiles the CEL predicates that clients subscribe with and evaluates them
// against messages.
//
// # Syntax
//
// A predicate is a CEL expression (https://cel.dev) of type bool over these variables:
//
//	source   string               the source's name
//	key      string               routing key, subject, topic or Kafka key; "" when none
//	headers  map(string, string)  the message's headers; empty when none
//	body     dyn                  the payload as its event shows it (below)
//	seq      int                  the message's sequence number in its source
//	time     timestamp            when the source received the message
//
// The body is the decoded JSON value when the payload is one valid JSON value; otherwise it is a
// string: the text when the payload is UTF-8, else its base64. In JSON, an integer literal (no
// fraction or exponent) that fits in int64 is an int and any other number a double; ints and
// doubles compare with each other (body.amount > 100 holds for 120.5), and body.n % 3 == 0 works
// on ints. When a name repeats in a JSON object, the last value counts, as in JavaScript.
//
// Everything in CEL's standard library is available: comparisons, arithmetic, &&, ||, !, ?:,
// in, has(), size(), startsWith, endsWith, contains, matches (RE2), the macros all, exists,
// exists_one, map and filter, timestamp and duration arithmetic. The standard string extension is
// enabled too: charAt, indexOf, lastIndexOf, lowerAscii, upperAscii, replace, split, substring,
// trim, join, reverse, format and strings.quote.
//
// An empty or all-space predicate, or literally true, matches every message (MatchesAll).
// Besides bool, an expression of type dyn is accepted (body.active): it must then be a bool at
// run time.
//
// # Errors
//
// Compile returns an *Error: CodeInvalid for a syntax or type error or an expression that is not
// a bool, CodeTooLong over Limits.MaxBytes and CodeTooCostly when CEL's static cost estimate is
// over Limits.MaxCost. At run time, a predicate that fails on one message (a missing field,
// a wrong type) does not match it: Match returns false and the error. CEL's && and || absorb
// errors where the other side decides: false && error is false, true || error is true.
//
// # Cost
//
// The static estimate assumes a large but ordinary message: strings, lists and maps in the body
// of up to 512 elements, up to 64 headers of 1 KiB, a key of 1 KiB. Under the default limit of
// 100,000, comparisons, string functions and a comprehension over a body list fit; a
// comprehension nested in another over body lists, or strings built up by repeated replace, do
// not. A regular expression (matches) costs its compiled program's size times the length of its
// input plus one, not CEL's guess from the pattern's length, so `(.*.*.*.*.*.*.*.*){1000}x`
// (18,003 instructions) is refused on any message field, and a pattern whose program is larger
// than the limit (or than 100,000 instructions) is refused before it is compiled.
//
// A predicate whose estimate does not grow with the message (comparisons, arithmetic, has,
// fields, and everything in the fast subset below) costs at most its estimate on any message,
// and runs unmeasured. The others (comprehensions, regular expressions, string functions and
// membership over message fields: Measured) are held to the limit as they run, by CEL's
// run-time cost tracking and its actual sizes, so that a message larger than the hints cannot
// make them run away; and to 1,024 comprehension iterations per evaluation, because that
// tracking takes time quadratic in the iterations. matches, replace, split and join work out
// what they would cost (the regular expression on the actual input; the size of the result they
// would build) before they run, and are not run when that alone is over the limit, as CEL's
// tracking charges a call only once it has returned. So one evaluation costs at most about
// twice the limit. Over it, Match returns an error that wraps ErrTooCostly, and the caller cuts
// the subscription.
//
// # Evaluation
//
// Predicates in the common subset (&&, ||, !, comparisons, in over a list of constants,
// startsWith, endsWith, contains and has over source, key, seq, time, headers.name and body
// paths) are compiled from the checked CEL tree into Go closures that read body paths straight
// from the parsed JSON and allocate nothing; a path read by one predicate is kept for the others
// on the same message. The rest are evaluated by cel-go, with OptOptimize; they convert the body
// to CEL values, once per message however many predicates need it. Both give the same results,
// errors included; a differential fuzz test holds them to it.
//
// Atoms lists the equality and membership tests that every match requires (on source, key,
// headers.name and body paths), for an index; Atom.Keys and BodyField.Key give the values and a
// message's field as one map key each, with CEL's equality, so that an index finds the
// predicates filed under a message's body value with one lookup per path. The index reads a
// body path through the same Input as the predicates, so the body is parsed once for both.
//
// # Concurrency
//
// A *Predicate is immutable and safe for concurrent use by many goroutines. An Input belongs to
// one goroutine at a time: a router keeps one, Resets it for each message and matches every
// candidate predicate against it, so that the body is decoded at most once per message and only
// if some predicate reads it.
package predicate
