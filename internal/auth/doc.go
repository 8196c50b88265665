// Package auth decides who a request comes from and what it may read, write and administer.
//
// # Access model
//
// A request carries one credential: an API key or a JSON Web Token, sent as
// "Authorization: Bearer <credential>" or, for browsers' WebSocket and EventSource, which cannot
// set headers, as the token query parameter. When both are present the header wins and the
// parameter is ignored. Authenticate turns the credential into a Principal:
//
//   - An API key is looked up by its SHA-256 among the configured hashes (the key itself is never
//     stored), comparing with every hash in constant time. Its principal has the key's name,
//     sources, write list, forced predicate, admin flag and expiry.
//   - Otherwise, when JWT is configured, the credential is verified as a JWT: HS256 with the
//     shared secret; RS256, ES256/ES384/ES512 (by curve) and EdDSA with PEM public keys; with a
//     JWKS file's or a JWKS URL's keys, the same or the alg a key names (RS384, RS512, PS256,
//     …). Each key is pinned to one algorithm, and only the configured
//     algorithms are accepted, so neither alg "none" nor a public key used as an HMAC secret gets
//     through. exp is required; exp and nbf are checked with a leeway (30s by default); aud and iss
//     are required when configured. The claims sources, write (lists of strings), where (string),
//     admin and sinks (bools) give the principal its rights, sub its name.
//   - With authentication off (no auth section, or auth: none), every request is an anonymous
//     principal that may do everything. Config.CheckListen says whether a listener may
//     serve that way: on loopback, or elsewhere only when auth: none is written.
//
// What a principal may do:
//
//   - Read: the sources in Sources; nil (the key or token says nothing) is every source, an
//     empty list none, "*" every source. A subscription with no source parameter reads the
//     allowed ones.
//   - See: only the messages that match both its Where (the forced predicate) and its own
//     predicate. Each is compiled on its own first and only then joined (predicate.And):
//     pasting the raw texts together would let a client's `true) || (true` escape the
//     parentheses.
//   - Write (ingest): only the sources in Write, which is empty unless given: reading a source
//     does not allow writing to it, or a tenant confined by Where could inject messages that
//     other tenants read.
//   - Administer: the admin endpoints need Admin, which widens nothing else.
//   - Make sinks: POST /v1/sinks needs Sinks or Admin (CanCreateSinks). A sink reads only what
//     its creator may read, through its creator's Where; a creator that is not an admin sees
//     and removes only the sinks it created.
//
// Authenticate's error wraps ErrNoCredential or ErrInvalidCredential: both are 401, with
// Challenge's WWW-Authenticate header; the message says why (expired, bad signature, wrong
// audience, …) and never quotes the credential. A principal that may not do what it asks is a
// 403, decided with CanRead, CanWrite and Admin. Log request URLs through RedactQuery or
// RedactURL, which hide the token parameter.
//
// # Concurrency
//
// An Authenticator is immutable after New and safe for concurrent use, but for the keys of a
// jwks_url: those are replaced whole (an atomic pointer) by each fetch that succeeds, and a
// fetch that fails keeps them. The set is fetched by Run (at once, then every jwks_refresh),
// whose caller owns its goroutine and ends it with its context, and by Authenticate when a
// token names a kid that no key has, at most once per jwks_min_refresh and one fetch at a time:
// the requests that wait for a fetch use its keys instead of fetching again. To apply a
// changed configuration (a rotated API key, a new JWKS file), build a new one and swap it in.
package auth
