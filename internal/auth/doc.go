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
//     JWKS file's keys, the same or the alg a key names (RS384, RS512, PS256, …). Each key is pinned to one algorithm, and only the configured
//     algorithms are accepted, so neither alg "none" nor a public key used as an HMAC secret gets
//     through. exp is required; exp and nbf are checked with a leeway (30s by default); aud and iss
//     are required when configured. The claims sources, write (lists of strings), where (string)
//     and admin (bool) give the principal its rights, sub its name.
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
//
// Authenticate's error wraps ErrNoCredential or ErrInvalidCredential: both are 401, with
// Challenge's WWW-Authenticate header; the message says why (expired, bad signature, wrong
// audience, …) and never quotes the credential. A principal that may not do what it asks is a
// 403, decided with CanRead, CanWrite and Admin. Log request URLs through RedactQuery or
// RedactURL, which hide the token parameter.
//
// # Concurrency
//
// An Authenticator is immutable after New and safe for concurrent use. To apply a changed
// configuration (a rotated key, a new JWKS file), build a new one and swap it in.
package auth
