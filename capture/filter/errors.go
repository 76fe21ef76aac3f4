package filter

import (
	"fmt"
	"unicode/utf8"
)

// ErrorKind says why an expression was refused.
type ErrorKind uint8

const (
	// ErrSyntax: the expression does not parse (tcpdump: "syntax error").
	ErrSyntax ErrorKind = iota + 1
	// ErrInvalid: it parses but means nothing (a port above 65535, "ip6"
	// applied to an IPv4 address, host bits set in a network...), as
	// tcpdump refuses it.
	ErrInvalid
	// ErrUnsupported: valid tcpdump syntax this filter does not implement
	// (packet data access such as tcp[13], mpls, host names...).
	ErrUnsupported
)

func (k ErrorKind) String() string {
	switch k {
	case ErrSyntax:
		return "syntax"
	case ErrInvalid:
		return "invalid"
	case ErrUnsupported:
		return "unsupported"
	}
	return fmt.Sprintf("ErrorKind(%d)", uint8(k))
}

// Error is a refused expression: what is wrong and where.
type Error struct {
	Kind ErrorKind
	// Expr is the whole expression as given.
	Expr string
	// Token is the offending token as written; empty at the end of the
	// expression.
	Token string
	// Column is the 1-based column (in characters) where Token starts.
	Column int
	// Msg says what is wrong, without the position.
	Msg string
}

// Error is one line: `filter: unexpected "foo" at column 15 in "host
// 10.0.0.1 foo"`.
func (e *Error) Error() string {
	return fmt.Sprintf("filter: %s at column %d in %q", e.Msg, e.Column, e.Expr)
}

// errorAt builds an Error for the token tok of expr.
func errorAt(kind ErrorKind, expr string, tok token, format string, args ...any) *Error {
	off := min(tok.pos, len(expr))
	return &Error{
		Kind:   kind,
		Expr:   expr,
		Token:  tok.text,
		Column: utf8.RuneCountInString(expr[:off]) + 1,
		Msg:    fmt.Sprintf(format, args...),
	}
}
