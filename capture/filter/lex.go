package filter

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// The scanner follows libpcap's scanner.l: the longest match wins, and on a
// tie the earlier rule (keyword, $arcnet, MAC, number, IPv4, IPv6, bogus
// MAC, named number, identifier). So "001122334455" is a MAC address,
// "10.1" an IPv4 address, "1000-2000" an identifier (a port range) and
// "080" the octal number 64, exactly as tcpdump reads them.

type tokKind uint8

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tNot   // "!" or "not"
	tAnd   // "and" or "&&"
	tOr    // "or" or "||"
	tSlash // "/" (only meaningful after an address)
	tOp    // any other operator: arithmetic and relations (unsupported)
	tKw    // a keyword; tok.kw says which
	tNum   // a number; tok.num holds it
	tHID   // dotted IPv4 address, 2 to 4 parts
	tHID6  // IPv6 address
	tEID   // MAC address
	tAID   // ARCnet address ($xx)
	tID    // any other name (also "1000-2000" and backslash-escaped words)
)

type token struct {
	kind tokKind
	kw   keyword
	text string // as written (for a backslash escape: without the backslash)
	pos  int    // byte offset in the expression
	num  uint32
}

// lexError is a token the scanner refuses; msg says why.
type lexError struct {
	tok token
	msg string
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }
func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }

// lex splits expr into tokens, ending with tEOF.
func lex(expr string) ([]token, *lexError) {
	var toks []token
	i := 0
	for {
		for i < len(expr) && strings.IndexByte(" \r\n\t", expr[i]) >= 0 {
			i++
		}
		if i == len(expr) {
			return append(toks, token{kind: tEOF, pos: i}), nil
		}
		t, n, err := lexOne(expr, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		i += n
	}
}

// lexOne scans the token at expr[i:] and returns it with its length.
func lexOne(expr string, i int) (token, int, *lexError) {
	s := expr[i:]
	tok := token{pos: i}
	if len(s) >= 2 {
		switch s[:2] {
		case "&&":
			tok.kind, tok.text = tAnd, s[:2]
			return tok, 2, nil
		case "||":
			tok.kind, tok.text = tOr, s[:2]
			return tok, 2, nil
		case ">=", "<=", "!=", "==", "<<", ">>":
			tok.kind, tok.text = tOp, s[:2]
			return tok, 2, nil
		}
	}
	switch c := s[0]; c {
	case '(':
		tok.kind = tLParen
	case ')':
		tok.kind = tRParen
	case '!':
		tok.kind = tNot
	case '/':
		tok.kind = tSlash
	case '+', '-', '*', '%', ':', '[', ']', '<', '>', '&', '|', '^', '=':
		if c != ':' || !strings.HasPrefix(s, "::") { // "::1" is an address
			tok.kind = tOp
		}
	case '\\':
		n := 1
		for n < len(s) && strings.IndexByte(" !()\n\t", s[n]) < 0 {
			n++
		}
		if n == 1 {
			tok.text = s[:1]
			return tok, 1, &lexError{tok, `unexpected "\"`}
		}
		tok.kind, tok.text = tID, s[1:n]
		return tok, n, nil
	case '$':
		if n := hexRun(s[1:], 2); n > 0 {
			tok.kind, tok.text = tAID, s[:1+n]
			return tok, 1 + n, nil
		}
	}
	if tok.kind != tEOF {
		if tok.text == "" {
			tok.text = s[:1]
		}
		return tok, 1, nil
	}
	if !isAlnum(s[0]) && s[0] != ':' {
		_, n := utf8.DecodeRuneInString(s)
		tok.text = s[:n]
		return tok, n, &lexError{tok, "unexpected character " + quote(tok.text)}
	}
	return lexWord(s, tok)
}

// lexWord scans a word: keyword, number, address or identifier.
func lexWord(s string, tok token) (token, int, *lexError) {
	idN := idLen(s)
	best, kind := 0, tEOF
	try := func(n int, k tokKind) {
		if n > best { // strictly longer: earlier rules win ties
			best, kind = n, k
		}
	}
	if idN > 0 {
		if _, ok := keywords[s[:idN]]; ok {
			try(idN, tKw)
		}
	}
	try(macLen(s), tEID)
	try(numLen(s), tNum)
	try(hidLen(s), tHID)
	try(v6Len(s), tHID6)
	bogus := bogusMACLen(s)
	if bogus > best {
		tok.text = s[:bogus]
		return tok, bogus, &lexError{tok, "bogus ethernet address " + quote(tok.text)}
	}
	if idN > best {
		if _, ok := namedNums[s[:idN]]; ok {
			best, kind = idN, tNum
		}
	}
	try(idN, tID)
	if best == 0 {
		tok.text = s[:1]
		return tok, 1, &lexError{tok, "unexpected character " + quote(s[:1])}
	}
	tok.kind, tok.text = kind, s[:best]
	switch kind {
	case tKw:
		tok.kw = keywords[tok.text]
		switch tok.kw {
		case kwNot:
			tok.kind = tNot
		case kwAnd:
			tok.kind = tAnd
		case kwOr:
			tok.kind = tOr
		}
	case tNum:
		if v, ok := namedNums[tok.text]; ok {
			tok.num = v
			break
		}
		v, msg := parseNum(tok.text)
		if msg != "" {
			return tok, best, &lexError{tok, msg}
		}
		tok.num = v
	}
	return tok, best, nil
}

// idLen matches [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?.
func idLen(s string) int {
	if len(s) == 0 || !isAlnum(s[0]) {
		return 0
	}
	n, last := 1, 1
	for n < len(s) && (isAlnum(s[n]) || s[n] == '-' || s[n] == '_' || s[n] == '.') {
		n++
		if s[n-1] != '-' && s[n-1] != '_' {
			last = n
		}
	}
	return last
}

// hexRun counts up to max hex digits at the start of s.
func hexRun(s string, max int) int {
	n := 0
	for n < len(s) && n < max && isHex(s[n]) {
		n++
	}
	return n
}

// numLen matches [0-9]+ | 0[xX][0-9A-Fa-f]+.
func numLen(s string) int {
	if len(s) > 2 && s[0] == '0' && s[1]|0x20 == 'x' && isHex(s[2]) {
		n := 3
		for n < len(s) && isHex(s[n]) {
			n++
		}
		return n
	}
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

// hidLen matches N.N, N.N.N or N.N.N.N.
func hidLen(s string) int {
	n := numLen(s)
	if n == 0 {
		return 0
	}
	best := 0
	for parts := 1; parts < 4; parts++ {
		if n >= len(s) || s[n] != '.' {
			break
		}
		m := numLen(s[n+1:])
		if m == 0 {
			break
		}
		n += 1 + m
		best = n
	}
	return best
}

// groupsLen matches count groups of 1-2 hex digits separated by sep, the
// longest way.
func groupsLen(s string, sep byte, count int) int {
	for d := min(2, hexRun(s, 2)); d >= 1; d-- {
		if count == 1 {
			return d
		}
		if d < len(s) && s[d] == sep {
			if m := groupsLen(s[d+1:], sep, count-1); m > 0 {
				return d + 1 + m
			}
		}
	}
	return 0
}

// macLen matches the MAC forms of scanner.l: 6 groups separated by ':',
// '-' or '.', xxxx.xxxx.xxxx, or 12 hex digits.
func macLen(s string) int {
	best := 0
	for _, sep := range []byte{':', '-', '.'} {
		best = max(best, groupsLen(s, sep, 6))
	}
	if len(s) >= 14 && hexRun(s, 4) == 4 && s[4] == '.' && hexRun(s[5:], 4) == 4 &&
		s[9] == '.' && hexRun(s[10:], 4) == 4 {
		best = max(best, 14)
	}
	if hexRun(s, 12) == 12 {
		best = max(best, 12)
	}
	return best
}

// bogusMACLen matches {B}:+({B}:+)+, which scanner.l reports as a bogus
// ethernet address when it is the longest match.
func bogusMACLen(s string) int {
	n, groups := 0, 0
	for {
		d := hexRun(s[n:], 2)
		if d == 0 || n+d >= len(s) || s[n+d] != ':' {
			break
		}
		n += d
		for n < len(s) && s[n] == ':' {
			n++
		}
		groups++
	}
	if groups < 2 {
		return 0
	}
	return n
}

// v6Len returns the length of the longest prefix of s that is an IPv6
// address without zone.
func v6Len(s string) int {
	n := 0
	for n < len(s) && n < 45 && (isHex(s[n]) || s[n] == ':' || s[n] == '.') {
		n++
	}
	for ; n >= 2; n-- {
		c := s[:n]
		if strings.IndexByte(c, ':') < 0 {
			return 0
		}
		if a, err := netip.ParseAddr(c); err == nil && a.Is6() {
			return n
		}
	}
	return 0
}

// parseNum converts a number as libpcap's stou does: 0x hex, 0 octal,
// else decimal, refusing overflow and non-octal digits.
func parseNum(s string) (uint32, string) {
	var n uint64
	base, digits := uint64(10), s
	switch {
	case len(s) > 1 && s[0] == '0' && s[1]|0x20 == 'x':
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d uint64
		switch {
		case isDigit(c):
			d = uint64(c - '0')
		default:
			d = uint64(c|0x20-'a') + 10
		}
		if d >= base {
			return 0, "number " + s + " contains non-octal digit"
		}
		n = n*base + d
		if n > 0xffffffff {
			return 0, "number " + s + " overflows 32 bits"
		}
	}
	return uint32(n), ""
}

func quote(s string) string { return `"` + s + `"` }
