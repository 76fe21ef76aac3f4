package pipeline

import "github.com/pathtrace/pathtrace/correlate"

// Slim spool entries. While the correlator is behind a flood, the spool
// holds its backlog (a million frames and more), so bytes per frame are
// memory: a slim entry is 48 bytes where a packed one takes 104. What the
// frames of one flow at one point share — addresses, ports, echo id, TTL,
// direction, the link header's length, the snap — is written once per slab
// in a small table (flowFields), and an entry holds what changes from frame
// to frame. A frame that does not fit (stamp not its capture time, a slab
// whose table is full, a record number far from the slab's first) is
// spooled packed as before.
const (
	slimEntry = 48
	// slabFlows bounds a slab's table: the lookup is a scan, and a
	// point's traffic under a filter is a handful of flows.
	slabFlows = 32
	// slabMisses: after this many frames of flows the full table has no
	// room for, the rest of the slab goes packed without a scan (traffic
	// of many flows would otherwise pay a whole scan a frame).
	slabMisses = 2 * slabFlows
)

// Slim entry layout; hdrTime and hdrKind as every entry.
const (
	slFlow  = 10 // uint16: index in the slab's table
	slNum   = 12 // int32: record number - the slab's first
	slHash  = 16
	slSeq   = 24
	slAck   = 28
	slKIPID = 32
	slLen   = 36
	slWire  = 40
	slIPID  = 44
)

// flowFields is the part of a packed frame that a flow's frames at one
// point share; comparable, so a lookup is ==.
type flowFields struct {
	src, dst       [4]byte
	srcMAC, dstMAC correlate.MAC
	sport, dport   uint16
	echoID, bits   uint16
	proto          correlate.Proto
	kind, ttl      uint8
	dir            correlate.LinkDir
	l2             int32 // wire - ipLen
	short          int32 // wire - cap
}

// putSlim spools p, captured at t, as a slim entry; false when it does not
// fit one (nothing written).
func (s *slab) putSlim(t int64, p *packed) bool {
	if p.stamp != t || s.misses >= slabMisses {
		return false
	}
	l2 := int64(p.wire) - int64(p.ipLen)
	short := int64(p.wire) - int64(p.cap)
	if int64(int32(l2)) != l2 || int64(int32(short)) != short {
		return false
	}
	if !s.numSet {
		s.numBase, s.numSet = p.num, true
	}
	dn := p.num - s.numBase
	if int64(int32(dn)) != dn {
		return false
	}
	ff := flowFields{src: p.src, dst: p.dst, srcMAC: p.srcMAC, dstMAC: p.dstMAC,
		sport: p.sport, dport: p.dport, echoID: p.echoID, bits: p.bits,
		proto: p.proto, kind: p.kind, ttl: p.ttl, dir: p.dir, l2: int32(l2), short: int32(short)}
	i := s.flow(&ff)
	if i < 0 {
		return false
	}
	b := s.mem[s.used : s.used+slimEntry]
	ne.PutUint64(b[hdrTime:], uint64(t))
	b[hdrKind] = kindSlim
	ne.PutUint16(b[slFlow:], uint16(i))
	ne.PutUint32(b[slNum:], uint32(int32(dn)))
	ne.PutUint64(b[slHash:], p.hash)
	ne.PutUint32(b[slSeq:], p.seq)
	ne.PutUint32(b[slAck:], p.ack)
	ne.PutUint32(b[slKIPID:], p.kipid)
	ne.PutUint32(b[slLen:], p.len)
	ne.PutUint32(b[slWire:], p.wire)
	ne.PutUint16(b[slIPID:], p.ipid)
	s.used += slimEntry
	return true
}

// flow returns ff's index in the slab's table, adding it if there is room;
// -1 when the table is full. The last flow found is tried first: a point
// sees a flow's frames in runs.
func (s *slab) flow(ff *flowFields) int {
	if s.lastFlow < len(s.flows) && s.flows[s.lastFlow] == *ff {
		return s.lastFlow
	}
	for i := range s.flows {
		if s.flows[i] == *ff {
			s.lastFlow = i
			return i
		}
	}
	if len(s.flows) == slabFlows {
		s.misses++
		return -1
	}
	s.flows = append(s.flows, *ff)
	s.lastFlow = len(s.flows) - 1
	return s.lastFlow
}

// getSlim reads the slim entry b (slimEntry bytes) into p; p.t, p.point
// and p.full are the caller's.
func (s *slab) getSlim(b []byte, t int64, p *packed) {
	_ = b[slimEntry-1]
	ff := &s.flows[ne.Uint16(b[slFlow:])]
	wire := ne.Uint32(b[slWire:])
	p.stamp = t
	p.num = s.numBase + int64(int32(ne.Uint32(b[slNum:])))
	p.hash = ne.Uint64(b[slHash:])
	p.seq = ne.Uint32(b[slSeq:])
	p.ack = ne.Uint32(b[slAck:])
	p.kipid = ne.Uint32(b[slKIPID:])
	p.len = ne.Uint32(b[slLen:])
	p.wire = wire
	p.ipLen = uint32(int64(wire) - int64(ff.l2))
	p.cap = uint32(int64(wire) - int64(ff.short))
	p.ipid = ne.Uint16(b[slIPID:])
	p.src, p.dst, p.srcMAC, p.dstMAC = ff.src, ff.dst, ff.srcMAC, ff.dstMAC
	p.sport, p.dport, p.echoID, p.bits = ff.sport, ff.dport, ff.echoID, ff.bits
	p.proto, p.kind, p.ttl, p.dir = ff.proto, ff.kind, ff.ttl, ff.dir
}
