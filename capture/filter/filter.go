// Package filter implements tcpdump's filter expression language
// (pcap-filter(7)) in pure Go, for --filter: host, net, port, portrange
// with src/dst, ether host/src/dst, ip, ip6, arp, rarp, tcp, udp, sctp,
// icmp, icmp6, vlan [id], [ip|ip6|ether] proto, broadcast, multicast,
// greater, less, and/or/not and parentheses, with tcpdump's qualifier
// inheritance ("host a or b", "port 53 or 80").
//
// An expression is compiled once; Match then evaluates it on the fields
// the decoder filled for a frame (and for the frame inside its tunnel),
// without allocating. The meaning of every primitive is libpcap 1.10's,
// including its quirks: "vlan" shifts every primitive after it by one tag;
// ip6 protocol tests look at the fixed header's Next Header and behind a
// fragment header only; ports are not read from non-first IPv4
// fragments; a frame cut off before a field the filter must read is
// rejected. Packet data access (tcp[13]), arithmetic, host names and the
// link-specific primitives (802.11, ATM, MPLS, PPPoE, pf) are refused with
// an ErrUnsupported error.
package filter

// Filter is a compiled expression. The zero of *Filter (nil) matches
// every frame. A Filter is immutable and safe for concurrent use.
type Filter struct {
	expr string
	tree *ast // nil for the empty expression
	prog program
}

// Compile parses expr. An empty (or blank) expression matches every frame.
// A refused expression returns an *Error.
func Compile(expr string) (*Filter, error) {
	toks, lerr := lex(expr)
	if lerr != nil {
		return nil, errorAt(ErrSyntax, expr, lerr.tok, "%s", lerr.msg)
	}
	tree, err := parseTokens(expr, toks)
	if err != nil {
		return nil, err
	}
	f := &Filter{expr: expr, tree: tree}
	if tree != nil {
		b := builder{p: &f.prog}
		f.prog.root = b.tree(tree)
	}
	return f, nil
}

func parseTokens(expr string, toks []token) (tree *ast, err *Error) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(parseError)
			if !ok {
				panic(r)
			}
			err = pe.err
		}
	}()
	p := &parser{expr: expr, toks: toks}
	return p.parse(), nil
}

// Match reports whether any of the views matches: pass the frame's fields
// and, for a tunnelled frame, the fields of the frame inside the tunnel,
// so that a filter on pod addresses keeps the VXLAN copies on the node.
// Nil views are skipped.
func (f *Filter) Match(views ...*Fields) bool {
	if f.All() {
		return true
	}
	for _, v := range views {
		if v != nil && f.prog.eval(f.prog.root, v) == resYes {
			return true
		}
	}
	return false
}

// All reports whether f matches every frame (nil, or the empty
// expression): a caller can skip filling fields for it.
func (f *Filter) All() bool { return f == nil || f.tree == nil }

// Expr returns the expression as given to Compile.
func (f *Filter) Expr() string {
	if f == nil {
		return ""
	}
	return f.expr
}

// String returns the expression in canonical form, for reports: every
// primitive with its qualifiers written out (no inheritance), groups of
// mixed and/or in parentheses. Compiling it gives the same filter.
func (f *Filter) String() string {
	if f == nil || f.tree == nil {
		return ""
	}
	var b []byte
	return string(appendAST(b, f.tree))
}

// typeDepth returns the largest number of VLAN tags before a type field
// the filter reads: a frame with fewer tags is one where libpcap reads
// payload bytes as a type field, and this filter matches nothing there.
func (f *Filter) typeDepth() uint8 {
	var d uint8
	var walk func(x *ast)
	walk = func(x *ast) {
		switch {
		case x == nil:
		case x.op == astPrim:
			switch x.prim.kind {
			case primEther, primEtherBroadcast, primEtherMulticast, primLess, primGreater:
			default:
				d = max(d, x.prim.depth)
			}
		default:
			walk(x.l)
			walk(x.r)
		}
	}
	walk(f.tree)
	return d
}
