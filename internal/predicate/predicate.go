package predicate

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// The defaults of Limits.
const (
	// DefaultMaxBytes is the default limit on the length of a predicate's source, in bytes.
	DefaultMaxBytes = 4096
	// DefaultMaxCost is the default limit on a predicate's CEL cost, both the static worst-case
	// estimate at compile time and, for Measured predicates, the cost actually spent on one
	// message. One unit is roughly one simple operation, such as a comparison or a field
	// selection, or one instruction of a regular expression on one character; see the package
	// documentation for what fits.
	DefaultMaxCost = 100_000
)

// Error codes, as the HTTP layer reports them.
const (
	CodeInvalid   = "invalid_predicate"
	CodeTooLong   = "predicate_too_long"
	CodeTooCostly = "predicate_too_costly"
)

// Limits bound what a predicate may cost. Zero values take the defaults.
type Limits struct {
	// MaxBytes is the longest source text accepted, in bytes. Defaults to DefaultMaxBytes (4096).
	MaxBytes int
	// MaxCost bounds the CEL cost: the static worst-case estimate at compile time, and the run-time
	// cost of one evaluation of a Measured predicate (comprehensions, regular expressions, string
	// functions over message fields). Defaults to DefaultMaxCost (100,000).
	MaxCost uint64
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxCost == 0 {
		l.MaxCost = DefaultMaxCost
	}
	return l
}

// Error is a compile-time problem with a predicate; the HTTP layer turns it into
// {"error":{"code","message","position"}}.
type Error struct {
	// Code is CodeInvalid (syntax, type, not a bool), CodeTooLong or CodeTooCostly.
	Code string
	// Message says what is wrong, for a person.
	Message string
	// Position is the 0-based character (rune) offset in the source where the problem is; -1 when
	// the problem has no place (a cost over the limit).
	Position int
}

// Error returns the message, with the position when there is one.
func (e *Error) Error() string {
	if e.Position < 0 {
		return e.Code + ": " + e.Message
	}
	return fmt.Sprintf("%s at position %d: %s", e.Code, e.Position, e.Message)
}

// Predicate is a compiled predicate. It is immutable and safe for concurrent use by many
// goroutines, each with its own Input.
type Predicate struct {
	src      string
	all      bool // matches every message without evaluation
	prg      cel.Program
	costMin  uint64
	costMax  uint64
	maxCost  uint64 // Limits.MaxCost
	measured bool   // held to maxCost as it runs: see Measured
	fast     boolFn // the closure for a predicate in the fast subset; nil for the rest
	atoms    []Atom
	decided  bool // the atoms are the whole predicate
	// comparisons are the equality tests of body fields with constants: see Comparisons.
	comparisons []Comparison
}

// String returns the source text.
func (p *Predicate) String() string { return p.src }

// MatchesAll reports whether the predicate matches every message without looking at it: an empty
// or all-whitespace predicate, or literally `true`. The router skips evaluation for these.
func (p *Predicate) MatchesAll() bool { return p.all }

// Cost returns the static cost estimate: the least and the most that one evaluation may cost, in
// CEL cost units, assuming messages within the size hints of the package documentation. For a
// predicate that is not Measured, the most holds for any message.
func (p *Predicate) Cost() (min, max uint64) { return p.costMin, p.costMax }

// Measured reports whether the predicate's cost grows with the message (comprehensions, regular
// expressions, string functions over message fields…), so that its estimate holds only for
// messages within the size hints: it is then measured as it runs, and an evaluation that goes
// over Limits.MaxCost fails with ErrTooCostly. The others are never measured: their estimate
// bounds them, whatever the message.
func (p *Predicate) Measured() bool { return p.measured }

// The variables a predicate reads.
const (
	varSource  = "source"
	varKey     = "key"
	varHeaders = "headers"
	varBody    = "body"
	varSeq     = "seq"
	varTime    = "time"
)

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varSource, cel.StringType),
		cel.Variable(varKey, cel.StringType),
		cel.Variable(varHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(varBody, cel.DynType),
		cel.Variable(varSeq, cel.IntType),
		cel.Variable(varTime, cel.TimestampType),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		// Bad literals are compile errors with a position, not a failure on every message.
		cel.ASTValidators(cel.ValidateRegexLiterals(), cel.ValidateTimestampLiterals(), cel.ValidateDurationLiterals()),
		// Length is limited by Limits.MaxBytes before CEL sees the text.
		cel.ParserExpressionSizeLimit(-1),
	)
})

// Compile parses and type-checks src, and checks it against lim. The error, when not nil, is
// always an *Error.
func Compile(src string, lim Limits) (*Predicate, error) {
	lim = lim.withDefaults()
	if len(src) > lim.MaxBytes {
		// The position is the first character that does not fit whole.
		end := lim.MaxBytes
		for end > 0 && !utf8.RuneStart(src[end]) {
			end--
		}
		return nil, &Error{
			Code:     CodeTooLong,
			Message:  fmt.Sprintf("predicate is %d bytes long; the length limit is %d bytes", len(src), lim.MaxBytes),
			Position: utf8.RuneCountInString(src[:end]),
		}
	}
	if strings.TrimFunc(src, unicode.IsSpace) == "" {
		return &Predicate{src: src, all: true}, nil
	}
	if !utf8.ValidString(src) {
		return nil, &Error{Code: CodeInvalid, Message: "predicate is not valid UTF-8", Position: invalidUTF8At(src)}
	}
	env, err := celEnv()
	if err != nil {
		// The environment is fixed; failing to build it is a bug that every test would show.
		panic(fmt.Sprintf("predicate: CEL environment: %v", err))
	}
	source := common.NewTextSource(src)
	parsed, iss := env.ParseSource(source)
	if iss.Err() != nil {
		return nil, issueError(source, iss)
	}
	// Before anything compiles them: a huge regular expression costs memory and time to
	// compile, even to be refused.
	if e := checkRegexLiterals(parsed.NativeRep(), lim); e != nil {
		return nil, e
	}
	checked, iss := env.Check(parsed)
	if iss.Err() != nil {
		return nil, issueError(source, iss)
	}
	native := checked.NativeRep()
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, &Error{
			Code:     CodeInvalid,
			Message:  fmt.Sprintf("predicate must be a bool expression, but its type is %s", typeName(t)),
			Position: startOffset(native),
		}
	}
	p := &Predicate{src: src, maxCost: lim.MaxCost}
	if lit, ok := literalBool(native.Expr()); ok && lit {
		p.all = true
		return p, nil
	}
	est, err := env.EstimateCost(checked, sizeEstimator{scale: 1})
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Message: "cannot estimate the cost: " + err.Error(), Position: -1}
	}
	p.costMin, p.costMax = est.Min, est.Max
	if est.Max > lim.MaxCost {
		return nil, &Error{
			Code:     CodeTooCostly,
			Message:  fmt.Sprintf("predicate is too costly: its estimated worst-case cost is %d, the cost limit is %d", est.Max, lim.MaxCost),
			Position: -1,
		}
	}
	// The estimate holds for messages within the size hints. One that does not grow with them
	// holds for any message; the others are measured as they run, and held to the limit.
	larger, err := env.EstimateCost(checked, sizeEstimator{scale: 2})
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Message: "cannot estimate the cost: " + err.Error(), Position: -1}
	}
	comprehension, bounded := false, false
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.ComprehensionKind:
			comprehension = true
		case celast.CallKind:
			if _, ok := overloadsOf[e.AsCall().FunctionName()]; ok {
				bounded = true
			}
		}
	}))
	p.measured = comprehension || larger.Max != est.Max
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	sizes := map[string]uint64{} // the regular expressions' sizes, by pattern: filled by boundCalls
	if bounded {
		opts = append(opts, boundCalls(lim.MaxCost, sizes))
	}
	if p.measured {
		// CEL's run-time cost tracking costs 4-5x per evaluation, which is why predicates whose
		// estimate holds whatever the message go without it.
		opts = append(opts, cel.CostLimit(lim.MaxCost), matchesTracker(sizes))
		if comprehension {
			opts = append(opts, countRanges(native.Expr()))
		}
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		// OptOptimize compiles constant regular expressions here.
		return nil, &Error{Code: CodeInvalid, Message: err.Error(), Position: -1}
	}
	p.prg = prg
	p.fast = compileFast(native)
	if p.fast != nil {
		// The closure takes time linear in the message, and is what Match runs.
		p.measured = false
	}
	p.atoms = findAtoms(native.Expr())
	p.decided = len(p.atoms) > 0 && allAtoms(native.Expr())
	p.comparisons = findComparisons(native)
	return p, nil
}

// issueError turns the first of CEL's compile errors into an *Error.
func issueError(source common.Source, iss *cel.Issues) *Error {
	errs := iss.Errors()
	if len(errs) == 0 {
		return &Error{Code: CodeInvalid, Message: iss.String(), Position: -1}
	}
	first := errs[0]
	for _, e := range errs[1:] {
		if before(e.Location, first.Location) {
			first = e
		}
	}
	msg := plain(first.Message)
	if n := len(errs) - 1; n == 1 {
		msg += " (and 1 more error)"
	} else if n > 1 {
		msg += fmt.Sprintf(" (and %d more errors)", n)
	}
	pos := -1
	if first.Location != nil && first.Location.Line() > 0 {
		if off, ok := source.LocationOffset(first.Location); ok && off >= 0 {
			pos = int(off)
		}
	}
	return &Error{Code: CodeInvalid, Message: msg, Position: pos}
}

func before(a, b common.Location) bool {
	if a == nil || a.Line() <= 0 {
		return false
	}
	if b == nil || b.Line() <= 0 {
		return true
	}
	return a.Line() < b.Line() || a.Line() == b.Line() && a.Column() < b.Column()
}

// startOffset is where the expression starts: the smallest offset of any of its nodes, which
// skips leading space and comments.
func startOffset(a *celast.AST) int {
	start := -1
	info := a.SourceInfo()
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if r, ok := info.GetOffsetRange(e.ID()); ok && (start < 0 || int(r.Start) < start) {
			start = int(r.Start)
		}
	}))
	if start < 0 {
		return 0
	}
	return start
}

func invalidUTF8At(s string) int {
	n := 0
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return n
			}
		}
		n++
	}
	return n
}

// typeName is a type as CEL source spells it.
func typeName(t *types.Type) string {
	switch t.Kind() {
	case types.TimestampKind:
		return "timestamp"
	case types.DurationKind:
		return "duration"
	}
	return t.String()
}

// literalBool reports the value of a literal bool expression.
func literalBool(e celast.Expr) (value, ok bool) {
	if e.Kind() != celast.LiteralKind {
		return false, false
	}
	b, ok := e.AsLiteral().(types.Bool)
	return bool(b), ok
}

// errNoMessage is returned by Match for an Input that was never Reset.
var errNoMessage = errors.New("predicate: the input has no message")
