package auth

import (
	"slices"
	"time"
)

// Method says how a principal was authenticated.
type Method string

// The methods.
const (
	MethodNone   Method = "none"    // authentication is off
	MethodAPIKey Method = "api_key" // a configured API key
	MethodJWT    Method = "jwt"     // a verified JSON Web Token
)

// Principal is who made a request and what it may do. Authenticate returns a new one for each
// request; treat it as read-only. A nil *Principal may do nothing.
type Principal struct {
	// Name identifies the principal in logs and per-credential limits: the API key's name, or
	// the token's sub ("jwt" when it has none). Never a secret.
	Name string
	// Method is how the principal was authenticated.
	Method Method
	// Sources it may read: nil means every source, an empty list none, "*" every source.
	Sources []string
	// Write lists the sources it may ingest into: nil or empty means none, "*" every source.
	Write []string
	// Where is a predicate to AND with every predicate the principal subscribes with; "" is none.
	// Join it with predicate.And, which takes both compiled on their own: pasting the raw texts
	// together would let a client's text such as `true) || (true` escape the parentheses.
	Where string
	// Admin allows the admin endpoints. It does not widen Sources, Write or Where.
	Admin bool
	// Sinks allows creating sinks (POST /v1/sinks), and seeing and removing those it created.
	// A sink it creates reads only what it may read: its Sources, through its Where.
	Sinks bool
	// Expires is when the credential stops being accepted (for a JWT, exp plus the leeway);
	// a stream opened with it should end then. Zero: never.
	Expires time.Time

	// keySum is the SHA-256 of the API key that authenticated it (MethodAPIKey): what
	// Authenticator.Holds looks for after a reload.
	keySum [32]byte
}

// CanRead reports whether p may read source.
func (p *Principal) CanRead(source string) bool {
	if p == nil {
		return false
	}
	return p.Sources == nil || slices.Contains(p.Sources, "*") || slices.Contains(p.Sources, source)
}

// CanCreateSinks reports whether p may create sinks: with the sinks right, or as an admin.
func (p *Principal) CanCreateSinks() bool {
	return p != nil && (p.Sinks || p.Admin)
}

// CanWrite reports whether p may ingest into source.
func (p *Principal) CanWrite(source string) bool {
	if p == nil {
		return false
	}
	return slices.Contains(p.Write, "*") || slices.Contains(p.Write, source)
}

// Expired reports whether p's credential is no longer accepted at now.
func (p *Principal) Expired(now time.Time) bool {
	return p == nil || !p.Expires.IsZero() && now.After(p.Expires)
}

// String is the principal for logs: method and name.
func (p *Principal) String() string {
	if p == nil {
		return "<nil>"
	}
	return string(p.Method) + ":" + p.Name
}

// anonymous is the principal of every request when authentication is off.
func anonymous() *Principal {
	return &Principal{Name: "anonymous", Method: MethodNone, Write: []string{"*"}, Admin: true, Sinks: true}
}

// clone returns a copy of p whose lists the caller cannot use to change the configuration.
func (p Principal) clone() *Principal {
	p.Sources = slices.Clone(p.Sources)
	p.Write = slices.Clone(p.Write)
	return &p
}
