package predicate

// And returns a predicate that matches what both forced and p match: how a credential's forced
// predicate narrows what its holder subscribes with. A nil or match-all operand is left out.
//
// Both were compiled on their own, so each source text is one complete expression. Joined as
// "(\nforced\n) && (\np\n)", neither can reach outside its parentheses: a complete expression
// has balanced parentheses and closed string literals, and the newlines end any line comment
// (`//`) before the closing parenthesis. The result is compiled afresh, so it is indexed,
// shared and costed as one predicate, within lim.
func And(forced, p *Predicate, lim Limits) (*Predicate, error) {
	switch {
	case forced == nil || forced.MatchesAll():
		return p, nil
	case p == nil || p.MatchesAll():
		return forced, nil
	}
	if lim.MaxBytes > 0 {
		lim.MaxBytes += len(forced.src) + 16 // the forced part does not count against the client
	}
	return Compile("(\n"+forced.src+"\n) && (\n"+p.src+"\n)", lim)
}
