package correlate

import "net/netip"

// Flows: which points frames of one conversation were seen at. A frame is
// lost after a point only where its own flow is known to go on past it
// (flows.go, loss.go); a flow never seen beyond a point, whose destination
// is not known to sit beyond it either, simply does not cross the rest of
// the path: its traces are off-path, not lost. Captures from real clusters
// are mostly such traffic (API server, BGP, SSH, health checks on a node
// NIC that the other points never see).

// maxFlows bounds the flow table, so a capture full of distinct
// conversations (a scan) cannot grow memory without bound; frames of flows
// beyond it count as flows seen nowhere else.
const maxFlows = 1 << 16

// flowKey is a conversation: protocol and address pair, either direction.
type flowKey struct {
	proto Proto
	a, b  netip.Addr // a <= b
}

// flow is what the engine knows of one conversation.
type flow struct {
	seen    uint64 // points where frames of it were seen
	offPath bool   // some trace of it was off-path (counted once per flow)
}

// flowOf returns f's flow, creating it while the table has room; nil for
// frames without addresses or once the table is full.
func (e *Engine) flowOf(f *Frame) *flow {
	a, b := f.SrcIP, f.DstIP
	if f.Key.Proto == ProtoARP {
		a, b = f.Key.Addr1, f.Key.Addr2
	}
	// The last flow's addresses, either way round, are conversant: its
	// key, checked first and field by field, spares the rest.
	if lk := &e.lastFlowKey; e.lastFlow != nil && f.Key.Proto == lk.proto &&
		(a == lk.a && b == lk.b || a == lk.b && b == lk.a) {
		return e.lastFlow // flows never leave the table
	}
	if !conversant(a) || !conversant(b) {
		return nil // no conversation to follow: DAD from ::, multicast, broadcast
	}
	if b.Less(a) {
		a, b = b, a
	}
	k := flowKey{f.Key.Proto, a, b}
	fl := e.flows[k]
	if fl == nil && len(e.flows) < maxFlows {
		fl = &flow{}
		e.flows[k] = fl
	}
	if fl != nil {
		e.lastFlowKey, e.lastFlow = k, fl
	}
	return fl
}

// conversant: an address that names one host.
func conversant(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// link records that point p saw a frame the points in seen saw too: the
// two captures overlap in time and share a path.
func (e *Engine) link(p int, seen uint64) { e.shared[p] |= seen }

// linked reports whether points p and q ever saw the same frame.
func (e *Engine) linked(p, q int) bool {
	return e.shared[p]&(1<<uint(q)) != 0 || e.shared[q]&(1<<uint(p)) != 0
}

// linkedBeyond reports whether p shares frames with a point between from
// and to (inclusive, either order).
func (e *Engine) linkedBeyond(p, from, to int) bool {
	if from > to {
		from, to = to, from
	}
	for q := from; q <= to; q++ {
		if e.linked(p, q) {
			return true
		}
	}
	return false
}
