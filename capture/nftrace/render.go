package nftrace

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// renderRule prints a rule's expressions as `nft list ruleset` (stateless,
// -s: counters without their numbers) prints the common ones: payload and
// meta/ct matches with their protocol dependencies folded in, set lookups,
// counter, limit, log, reject, verdicts, nftrace/mark sets, the comment,
// and iptables-nft's xtables matches/targets (see xt.go). An expression
// it does not know is shown as [name]. fam is the table's family; sets
// renders a lookup's set ("{ 22, 80 }" or "@name") for a value type.
func renderRule(fam Family, exprs []expr.Any, udata []byte, sets func(name string, t valueType) string) string {
	r := &renderer{fam: fam, regs: map[uint32]operand{}, sets: sets}
	switch fam {
	case FamilyIPv4:
		r.l3 = "ip"
	case FamilyIPv6:
		r.l3 = "ip6"
	case FamilyARP:
		r.l3 = "arp"
	}
	for _, e := range exprs {
		r.expr(e)
	}
	var out []string
	for i, it := range r.items {
		if it.dep && r.depUsed(i) {
			continue
		}
		out = append(out, it.text)
	}
	out = append(out, r.comments...)
	if c, ok := userdata.GetString(udata, userdata.TypeComment); ok {
		out = append(out, fmt.Sprintf("comment %q", c))
	}
	return strings.Join(out, " ")
}

// operand is what a register holds: a loaded field, maybe masked.
type operand struct {
	lhs  string // "ip saddr", "meta l4proto", "ct state", "@th,64,128"
	typ  valueType
	bits int  // prefix length for a partially loaded address; 0 if whole
	l3   bool // a network-header field (needs an L3 dependency)
	l4   bool // a transport-header field (needs an L4 dependency)
	l4p  byte // the L4 protocol it was named for
	l3n  string
	// dependency candidates: a match on these says which protocol follows
	depL3 bool // nfproto / ether type / meta protocol
	depL4 bool // meta l4proto / ip protocol / ip6 nexthdr
	mask  []byte
	imm   []byte // an immediate value (for "set" statements)
}

type item struct {
	text  string
	dep   bool   // a protocol dependency nft hides when a later match implies it
	l3    string // for dep: the L3 it asserts ("ip", "ip6", "arp")
	l4    byte   // for dep: the L4 protocol it asserts
	usesL string // the L3 of a network-header match
	usesP byte   // the L4 of a transport-header match (0: none)
}

type renderer struct {
	fam      Family
	regs     map[uint32]operand
	items    []item
	comments []string
	l3       string // the L3 protocol known at this point
	l4       byte   // the L4 protocol known at this point
	sets     func(name string, t valueType) string
	lastGte  string // the item just added was "lhs >= a"
}

// depUsed: a later item relies on the protocol dependency at i.
func (r *renderer) depUsed(i int) bool {
	d := r.items[i]
	for _, it := range r.items[i+1:] {
		if d.l4 != 0 && it.usesP == d.l4 {
			return true
		}
		if d.l3 != "" && (it.usesL == d.l3 || (it.usesP != 0 && l3Of(it.usesP) == d.l3)) {
			return true
		}
	}
	return false
}

// l3Of: the L3 an L4 protocol implies (ICMP is IPv4's, ICMPv6 IPv6's).
func l3Of(p byte) string {
	switch p {
	case protoICMP:
		return "ip"
	case protoICMPv6:
		return "ip6"
	}
	return ""
}

func (r *renderer) add(it item) { r.items = append(r.items, it) }

func (r *renderer) expr(e expr.Any) {
	switch e := e.(type) {
	case *expr.Payload:
		if e.OperationType != expr.PayloadLoad {
			r.add(item{text: "[payload write]"})
			return
		}
		r.regs[e.DestRegister] = r.payload(e)
	case *expr.Meta:
		if e.SourceRegister {
			r.add(item{text: fmt.Sprintf("%s set %s", metaName(e.Key), r.immText(e.Register, metaType(e.Key)))})
			return
		}
		op := operand{lhs: metaName(e.Key), typ: metaType(e.Key)}
		op.depL3 = e.Key == expr.MetaKeyNFPROTO || e.Key == expr.MetaKeyPROTOCOL
		op.depL4 = e.Key == expr.MetaKeyL4PROTO
		r.regs[e.Register] = op
	case *expr.Ct:
		name := "ct " + ctName(e.Key)
		if e.SourceRegister {
			r.add(item{text: fmt.Sprintf("%s set %s", name, r.immText(e.Register, tHostHex))})
			return
		}
		t := tHostInt
		switch e.Key {
		case expr.CtKeySTATE:
			t = tCtState
		case expr.CtKeyMARK:
			t = tHostHex
		}
		r.regs[e.Register] = operand{lhs: name, typ: t}
	case *expr.Bitwise:
		op := r.regs[e.SourceRegister]
		op.mask = e.Mask
		r.regs[e.DestRegister] = op
	case *expr.Immediate:
		r.regs[e.Register] = operand{imm: e.Data}
	case *expr.Cmp:
		r.cmp(e)
	case *expr.Range:
		op := r.regs[e.Register]
		r.add(r.match(op, cmpOp(e.Op), formatValue(op.typ, e.FromData)+"-"+formatValue(op.typ, e.ToData)))
	case *expr.Lookup:
		op := r.regs[e.SourceRegister]
		set := "@" + e.SetName
		if r.sets != nil {
			set = r.sets(e.SetName, op.typ)
		}
		o := ""
		if e.Invert {
			o = "!="
		}
		r.add(r.match(op, o, set))
	case *expr.Counter:
		r.add(item{text: "counter"})
	case *expr.Verdict:
		r.add(item{text: verdictText(e)})
	case *expr.Limit:
		r.add(item{text: limitText(e)})
	case *expr.Log:
		r.add(item{text: logText(e)})
	case *expr.Reject:
		r.add(item{text: rejectText(r.fam, r.l3, e)})
	case *expr.Notrack:
		r.add(item{text: "notrack"})
	case *expr.Match:
		if t, comment := xtMatchText(e); comment {
			r.comments = append(r.comments, t)
		} else {
			r.add(item{text: t})
		}
	case *expr.Target:
		r.add(item{text: xtTargetText(e)})
	default:
		name := strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.")
		r.add(item{text: "[" + strings.ToLower(name) + "]"})
	}
}

// payload names a loaded header field from the protocol context.
func (r *renderer) payload(e *expr.Payload) operand {
	raw := func(base string) operand {
		return operand{lhs: fmt.Sprintf("@%s,%d,%d", base, e.Offset*8, e.Len*8), typ: tHex}
	}
	switch e.Base {
	case expr.PayloadBaseLLHeader:
		if f, ok, _ := findField(fieldsEther, e.Offset, e.Len); ok && (r.fam == FamilyBridge || r.fam == FamilyNetdev) {
			return operand{lhs: "ether " + f.name, typ: f.typ, depL3: f.name == "type"}
		}
		return raw("ll")
	case expr.PayloadBaseNetworkHeader:
		f, ok, prefix := findField(l3Fields(r.l3), e.Offset, e.Len)
		if !ok {
			return raw("nh")
		}
		op := operand{lhs: r.l3 + " " + f.name, typ: f.typ, l3: true, l3n: r.l3}
		op.depL4 = f.name == "protocol" || f.name == "nexthdr"
		if prefix {
			op.bits = int(e.Len * 8)
		}
		return op
	case expr.PayloadBaseTransportHeader:
		name, fs := l4Fields(r.l4)
		f, ok, _ := findField(fs, e.Offset, e.Len)
		if !ok {
			return raw("th")
		}
		return operand{lhs: name + " " + f.name, typ: f.typ, l4: true, l4p: r.l4}
	}
	return raw("payload")
}

func (r *renderer) cmp(e *expr.Cmp) {
	op := r.regs[e.Register]
	val := e.Data
	// ct state and other flag tests: (x & mask) != 0 -> "ct state a,b".
	if op.mask != nil && e.Op == expr.CmpOpNeq && isZero(val) && op.typ == tCtState {
		r.add(r.match(op, "", formatValue(op.typ, op.mask)))
		return
	}
	text := formatValue(op.typ, val)
	if op.bits == 0 && op.mask != nil && (op.typ == tAddr4 || op.typ == tAddr6) {
		op.bits = onesPrefix(op.mask)
	}
	if op.bits > 0 {
		full := 4
		if op.typ == tAddr6 {
			full = 16
		}
		padded := make([]byte, full)
		copy(padded, val)
		text = fmt.Sprintf("%s/%d", formatValue(op.typ, padded), op.bits)
	} else if op.mask != nil && !isAllOnes(op.mask) {
		text = fmt.Sprintf("& %s == %s", formatValue(tHex, op.mask), text)
	}
	// A range is compiled to ">= a" then "<= b" on one register.
	if n := len(r.items); e.Op == expr.CmpOpLte && n > 0 && r.lastGte == op.lhs+" >= " && strings.HasPrefix(r.items[n-1].text, op.lhs+" >= ") {
		r.items[n-1].text = op.lhs + " " + strings.TrimPrefix(r.items[n-1].text, op.lhs+" >= ") + "-" + text
		r.lastGte = ""
		return
	}
	r.lastGte = ""
	if e.Op == expr.CmpOpGte {
		r.lastGte = op.lhs + " >= "
	}
	it := r.match(op, cmpOp(e.Op), text)
	if e.Op == expr.CmpOpEq {
		// Learn the protocol for the fields that follow.
		if op.depL3 {
			if l3 := l3Name(op.typ, val); l3 != "" {
				r.l3, it.dep, it.l3 = l3, true, l3
			}
		}
		if op.depL4 && len(val) == 1 {
			r.l4, it.dep, it.l4 = val[0], true, val[0]
		}
	}
	r.add(it)
}

// l3Name: the L3 a dependency value asserts.
func l3Name(t valueType, v []byte) string {
	switch formatValue(t, v) {
	case "ip", "ipv4":
		return "ip"
	case "ip6", "ipv6":
		return "ip6"
	case "arp":
		return "arp"
	}
	return ""
}

func (r *renderer) match(op operand, cmp, value string) item {
	it := item{text: strings.TrimSpace(op.lhs + " " + strings.TrimSpace(cmp+" "+value))}
	if op.l3 {
		it.usesL = op.l3n
	}
	if op.l4 && op.l4p != 0 {
		it.usesP = op.l4p
	}
	return it
}

func (r *renderer) immText(reg uint32, t valueType) string {
	return formatValue(t, r.regs[reg].imm)
}

func cmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return ""
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func isAllOnes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// onesPrefix: the length of a contiguous prefix mask (0 if not one).
func onesPrefix(m []byte) int {
	n, done := 0, false
	for _, c := range m {
		if done && c != 0 {
			return 0
		}
		l := bits.LeadingZeros8(^c)
		if c<<l != 0 {
			return 0
		}
		n += l
		done = l < 8
	}
	return n
}
