package filter

// A recursive-descent rendering of libpcap's grammar.y (libpcap 1.10):
//
//	expr  := term { ("and" | "or") (term | id) }   equal precedence, left to right
//	term  := "not" term | "(" expr ")" | head id | pname | other
//	head  := [pname] [dir] [host|net|port|portrange]  |  [pname] proto
//	id    := "not" id | "(" id { ("and"|"or") id } ")" | number | address | name
//
// An id after "and"/"or" inherits the qualifiers of the primitive before
// it ("host a or b" is "host a or host b"; "tcp port 53 or 80" is "tcp
// port 53 or tcp port 80"); a parenthesised expression passes on the
// qualifiers in force before it; a bare protocol ("tcp") or special
// primitive ("vlan", "less") leaves none, so "tcp or 80" is an error as in
// tcpdump. Each primitive is checked and given its meaning as it is read,
// in textual order, which is what "vlan" needs: every "vlan" moves the
// offsets of all the primitives after it by one tag.

type dirQual uint8

const (
	dirDefault dirQual = iota
	dirSrc
	dirDst
	dirOr  // "src or dst"
	dirAnd // "src and dst"
)

type addrQual uint8

const (
	addrUndef addrQual = iota // nothing to inherit
	addrDefault
	addrHost
	addrNet
	addrPort
	addrPortrange
	addrProto
)

// qual is the qualifiers in force for an id.
type qual struct {
	proto     keyword // kwNone: no protocol qualifier
	protoText string  // the protocol qualifier as written, for messages
	dir       dirQual
	addr      addrQual
}

var qerr = qual{}

type astOp uint8

const (
	astPrim astOp = iota
	astAnd
	astOr
	astNot
)

// ast is the parsed expression: and/or/not over primitives.
type ast struct {
	op   astOp
	l, r *ast // r unused for not
	prim *prim
}

// maxNesting bounds parentheses and "not" chains, as bison's stack bounds
// tcpdump's.
const maxNesting = 1000

type parser struct {
	expr  string
	toks  []token
	i     int
	depth uint8 // "vlan" keywords read so far
	nest  int
}

// parseError carries an *Error through the recursion to Compile.
type parseError struct{ err *Error }

func (p *parser) fail(kind ErrorKind, tok token, format string, args ...any) {
	panic(parseError{errorAt(kind, p.expr, tok, format, args...)})
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token { t := p.toks[p.i]; p.i = min(p.i+1, len(p.toks)-1); return t }

func (p *parser) unexpected(tok token) {
	if tok.kind == tEOF {
		p.fail(ErrSyntax, tok, "unexpected end of expression")
	}
	p.fail(ErrSyntax, tok, "unexpected %s", quote(tok.text))
}

func (p *parser) expect(k tokKind) token {
	tok := p.next()
	if tok.kind != k {
		p.unexpected(tok)
	}
	return tok
}

func (p *parser) enter(tok token) {
	p.nest++
	if p.nest > maxNesting {
		p.fail(ErrInvalid, tok, "expression nested more than %d deep", maxNesting)
	}
}

func (p *parser) leave() { p.nest-- }

func bin(op astOp, l, r *ast) *ast { return &ast{op: op, l: l, r: r} }

// parse reads the whole expression; nil for an empty one.
func (p *parser) parse() *ast {
	if p.peek().kind == tEOF {
		return nil
	}
	x, _ := p.parseExpr(qerr)
	if tok := p.peek(); tok.kind != tEOF {
		p.unexpected(tok)
	}
	return x
}

func (p *parser) parseExpr(q qual) (*ast, qual) {
	x, q := p.parseTerm(q)
	for {
		var op astOp
		switch p.peek().kind {
		case tAnd:
			op = astAnd
		case tOr:
			op = astOr
		default:
			return x, q
		}
		p.next()
		var y *ast
		y, q = p.parseOperand(q)
		x = bin(op, x, y)
	}
}

func (p *parser) parseTerm(q qual) (*ast, qual) {
	tok := p.peek()
	switch tok.kind {
	case tNot:
		p.next()
		p.enter(tok)
		x, q2 := p.parseTerm(q)
		p.leave()
		return &ast{op: astNot, l: x}, q2
	case tLParen:
		p.next()
		p.enter(tok)
		x, _ := p.parseExpr(q)
		p.expect(tRParen)
		p.leave()
		return x, q
	}
	return p.parseRterm()
}

// isIDStart reports whether the token at offset k starts an id.
func (p *parser) isIDStart(k int) bool {
	switch p.peekAt(k).kind {
	case tHID, tHID6, tEID, tAID, tID:
		return true
	case tNum:
		return p.peekAt(k+1).kind != tOp
	}
	return false
}

// parseOperand reads what follows "and"/"or": a term, or an id that
// inherits q.
func (p *parser) parseOperand(q qual) (*ast, qual) {
	tok := p.peek()
	switch {
	case tok.kind == tNot:
		p.next()
		p.enter(tok)
		x, q2 := p.parseOperand(q)
		p.leave()
		return &ast{op: astNot, l: x}, q2
	case tok.kind == tLParen:
		k := 1
		for p.peekAt(k).kind == tNot || p.peekAt(k).kind == tLParen {
			k++
		}
		if p.isIDStart(k) {
			return p.parseID(q), q
		}
		return p.parseTerm(q)
	case p.isIDStart(0):
		return p.parseID(q), q
	}
	return p.parseTerm(q)
}

// parseID reads an id under the qualifiers q.
func (p *parser) parseID(q qual) *ast {
	tok := p.next()
	switch tok.kind {
	case tNot:
		p.enter(tok)
		x := p.parseID(q)
		p.leave()
		return &ast{op: astNot, l: x}
	case tLParen:
		p.enter(tok)
		var x *ast
		if p.peek().kind == tLParen {
			// Only a number may be parenthesised again here (grammar.y's
			// "qid: pnum"): tcpdump refuses "host a and ((b))".
			n, ok := p.pnum()
			if !ok {
				p.unexpected(p.peek())
			}
			x = p.prim(p.genNum(n, q))
		} else {
			x = p.parseID(q)
		}
		for p.peek().kind == tAnd || p.peek().kind == tOr {
			op := astAnd
			if p.next().kind == tOr {
				op = astOr
			}
			x = bin(op, x, p.parseID(q))
		}
		p.expect(tRParen)
		p.leave()
		return x
	case tNum:
		if p.peek().kind == tOp {
			p.fail(ErrUnsupported, p.peek(), "arithmetic expressions (%s) are not supported", quote(p.peek().text))
		}
		return p.prim(p.genNum(tok, q))
	case tHID:
		return p.prim(p.parseHID(tok, q))
	case tHID6:
		masklen := uint32(128)
		if p.peek().kind == tSlash {
			p.next()
			masklen = p.expect(tNum).num
		}
		return p.prim(p.genIPv6(tok, masklen, q))
	case tEID:
		return p.prim(p.genEther(tok, q))
	case tAID:
		p.fail(ErrUnsupported, tok, "ARCnet addresses are not supported")
	case tID:
		return p.prim(p.genName(tok, q))
	}
	p.unexpected(tok)
	return nil
}

func (p *parser) prim(pr *prim) *ast { return &ast{op: astPrim, prim: pr} }

// parseHID reads an IPv4 address and an optional /len or "mask m".
func (p *parser) parseHID(tok token, q qual) *prim {
	switch p.peek().kind {
	case tSlash:
		p.next()
		n := p.expect(tNum)
		if n.num > 32 {
			p.fail(ErrInvalid, n, "mask length must be <= 32")
		}
		return p.genMasked(tok, prefixMask(n.num), q)
	case tKw:
		if p.peek().kw == kwMask {
			p.next()
			m := p.expect(tHID)
			mask, mlen := p.atoin(m)
			return p.genMasked(tok, mask<<(32-mlen), q)
		}
	}
	switch q.addr {
	case addrPort, addrPortrange, addrProto:
		p.fail(ErrInvalid, tok, "%s applied to an IPv4 address", addrWord(q.addr))
	}
	return p.genNum(tok, q)
}

func prefixMask(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 0xffffffff << (32 - n)
}

func addrWord(a addrQual) string {
	switch a {
	case addrPort:
		return "'port'"
	case addrPortrange:
		return "'portrange'"
	case addrProto:
		return "'proto'"
	}
	return "qualifier"
}

// parseRterm reads a primitive that starts with a keyword.
func (p *parser) parseRterm() (*ast, qual) {
	tok := p.peek()
	if tok.kind == tNum && p.peekAt(1).kind == tOp {
		p.fail(ErrUnsupported, p.peekAt(1), "arithmetic expressions (%s) are not supported", quote(p.peekAt(1).text))
	}
	if tok.kind != tKw {
		p.unexpected(tok)
	}
	p.next()
	switch k := tok.kw; {
	case k.isPname():
		if k == kwOtherProto {
			p.fail(ErrUnsupported, tok, "protocol %s is not supported", quote(tok.text))
		}
		nt := p.peek()
		if nt.kind == tOp && nt.text == "[" {
			p.fail(ErrUnsupported, tok, "packet data access (%s[...]) is not supported", tok.text)
		}
		if nt.kind == tKw {
			switch nt.kw {
			case kwSrc, kwDst, kwHost, kwNet, kwPort, kwPortrange, kwProto, kwProtochain, kwGateway:
				return p.parseHead(tok)
			case kwBroadcast, kwMulticast:
				p.next()
				return p.prim(p.genCast(nt, tok)), qerr
			}
		}
		return p.prim(p.genAbbrev(tok)), qerr
	case k == kwSrc || k == kwDst || k == kwHost || k == kwNet || k == kwPort || k == kwPortrange ||
		k == kwProto || k == kwProtochain || k == kwGateway:
		p.i--
		return p.parseHead(token{})
	case k == kwBroadcast || k == kwMulticast:
		return p.prim(p.genCast(tok, token{})), qerr
	case k == kwLess || k == kwGreater:
		n := p.expect(tNum)
		pk := primLess
		if k == kwGreater {
			pk = primGreater
		}
		return p.prim(&prim{kind: pk, n: n.num}), qerr
	case k == kwVLAN:
		pr := &prim{kind: primVLAN, depth: p.depth}
		if n, ok := p.pnum(); ok {
			if n.num > 0x0fff {
				p.fail(ErrInvalid, n, "VLAN tag %d greater than maximum 4095", n.num)
			}
			pr.hasID, pr.n = true, n.num
		}
		if p.depth < 255 {
			p.depth++
		}
		return p.prim(pr), qerr
	case k == kwLen:
		p.fail(ErrUnsupported, tok, "arithmetic expressions (%s) are not supported; use greater or less", quote(tok.text))
	case k == kwMask:
		p.unexpected(tok)
	}
	p.fail(ErrUnsupported, tok, "primitive %s is not supported", quote(tok.text))
	return nil, qerr
}

// pnum reads an optional number, possibly in parentheses.
func (p *parser) pnum() (token, bool) {
	k := 0
	for p.peekAt(k).kind == tLParen {
		k++
	}
	if p.peekAt(k).kind != tNum {
		return token{}, false
	}
	for range k {
		p.next()
	}
	n := p.next()
	for range k {
		p.expect(tRParen)
	}
	return n, true
}

// parseHead reads [pname] [dir] [addr-type] and the id after it. ptok is
// the protocol qualifier already read, if any.
func (p *parser) parseHead(ptok token) (*ast, qual) {
	q := qual{proto: ptok.kw, protoText: ptok.text, addr: addrDefault}
	tok := p.peek()
	if tok.kind == tKw && (tok.kw == kwSrc || tok.kw == kwDst) {
		p.next()
		q.dir = dirSrc
		if tok.kw == kwDst {
			q.dir = dirDst
		}
		conj, other := p.peek(), p.peekAt(1)
		if (conj.kind == tOr || conj.kind == tAnd) && other.kind == tKw &&
			(other.kw == kwSrc || other.kw == kwDst) && other.kw != tok.kw {
			p.next()
			p.next()
			q.dir = dirOr
			if conj.kind == tAnd {
				q.dir = dirAnd
			}
		}
	}
	tok = p.peek()
	if tok.kind == tKw {
		switch tok.kw {
		case kwHost:
			q.addr = addrHost
		case kwNet:
			q.addr = addrNet
		case kwPort:
			q.addr = addrPort
		case kwPortrange:
			q.addr = addrPortrange
		case kwProto:
			if q.dir == dirDefault {
				q.addr = addrProto
			}
		case kwProtochain, kwGateway:
			if q.dir == dirDefault {
				p.fail(ErrUnsupported, tok, "%s is not supported", quote(tok.text))
			}
		}
		if q.addr != addrDefault {
			p.next()
		}
	}
	return p.parseID(q), q
}
