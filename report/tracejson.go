package report

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/pathtrace/pathtrace/correlate"
)

// appendTrace writes t compact, on one line, as encoding/json's Marshal
// would with SetEscapeHTML(false) — byte for byte
// (TestTraceJSONMatchesEncodingJSON) — but without reflection: a long
// capture emits hundreds of thousands of traces, and encoding/json was most
// of the time of a JSON report. A trace is a line of its own in the
// report: line tools (grep, awk, head) see one trace a line, and a flood's
// report is ~40% smaller than indented, which is what writing it costs
// live. What lies between two values (comma, the next key) is one
// precomputed string per place (jsonLayout), joined where neighbours always
// go out together; a hop is two cached runs around its stamp's digits and
// its numbers (stampCache).
func appendTrace(b []byte, t *correlate.Trace) []byte {
	var sc stampCache
	return appendTraceCached(b, t, &sc)
}

// appendTraceCached is appendTrace with the caller's stamp cache (a stream
// keeps one: consecutive traces share their second).
func appendTraceCached(b []byte, t *correlate.Trace, sc *stampCache) []byte {
	l := traceLayout
	b = append(b, l.tOpen...)
	b = appendInt(b, int64(t.N))
	b = append(b, sc.kind(l, t)...)
	b = appendOptU(b, t.ID)
	b = append(b, l.tSeq...)
	b = appendOptU(b, t.Seq)
	b = append(b, l.tIPID...)
	b = appendOptU(b, t.IPID)
	b = append(b, sc.flow(l, t)...)
	if len(t.Hops) == 0 {
		b = append(b, "[]"...)
	} else {
		// A hop's close, the next one's open and the array's brackets
		// go out with their neighbours: one run between two hops.
		b = append(b, l.hopsOpen...)
		for i := range t.Hops {
			if i > 0 {
				b = append(b, l.hopNext...)
			}
			b = appendHop(b, l, &t.Hops[i], sc)
		}
		b = append(b, l.hopsClose...)
	}
	if t.LostAfter != "" {
		b = append(b, l.tLostAfter...)
		b = appendStr(b, t.LostAfter)
	}
	if len(t.Missing) == 0 && len(t.Rewrites) == 0 {
		b = append(b, l.tNoMissingNoRewrites...) // most traces: one run to reply_to's value
	} else {
		b = append(b, l.tMissing...)
		b = appendStrs(b, t.Missing)
		b = append(b, l.tRewrites...)
		b = appendRewrites(b, l, t.Rewrites)
		b = append(b, l.tReplyTo...)
	}
	if t.ReplyTo.Valid {
		b = appendInt(b, t.ReplyTo.V)
	} else {
		b = append(b, "null"...)
	}
	if t.RTT != nil {
		b = append(b, l.tRTT...)
		b = appendInt(b, t.RTT.TotalNs)
		b = append(b, l.rttForward...)
		b = appendInt(b, t.RTT.ForwardNs)
		b = append(b, l.rttTurnaround...)
		b = appendInt(b, t.RTT.TurnaroundNs)
		b = append(b, l.rttReverse...)
		b = appendInt(b, t.RTT.ReverseNs)
		b = append(b, l.rttClose...)
	}
	if len(t.Flags) == 0 && t.Drop == nil {
		return append(b, l.tNoFlagsClose...) // most traces: one run to the end
	}
	b = append(b, l.tFlags...)
	if len(t.Flags) == 0 {
		b = append(b, "[]"...)
	} else {
		for i, f := range t.Flags {
			b = append(b, "[,"[min(i, 1)])
			b = appendStr(b, f.String())
		}
		b = append(b, ']')
	}
	if d := t.Drop; d != nil {
		b = append(b, l.tDrop...)
		b = appendStr(b, d.Reason)
		b = append(b, l.dLocation...)
		b = appendStr(b, d.Location)
		b = append(b, l.dNetns...)
		b = appendStr(b, d.Netns)
		b = append(b, l.dInterface...)
		b = appendStr(b, d.Interface)
		b = append(b, l.dTime...)
		b = append(sc.append(b, int64(d.Time)), '"')
		if d.Rule != "" {
			b = append(b, l.dRule...)
			b = appendStr(b, d.Rule)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendRewrites(b []byte, l *jsonLayout, rs []correlate.Rewrite) []byte {
	if len(rs) == 0 {
		return append(b, "[]"...)
	}
	for i, r := range rs {
		b = append(b, "[,"[min(i, 1)])
		b = append(b, l.rPoint...)
		b = appendStr(b, r.Point)
		b = append(b, l.rField...)
		b = appendStr(b, r.Field.String())
		b = append(b, l.rFrom...)
		b = appendStr(b, r.From)
		b = append(b, l.rTo...)
		b = appendStr(b, r.To)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendHop(b []byte, l *jsonLayout, h *correlate.Hop, sc *stampCache) []byte {
	sec, frac := splitStamp(int64(h.Time))
	if (!h.TTL.Valid || h.TTL.V < 256) && int(h.Dir) < len(l.hDirFrame) {
		s := sc.hop(l, h, sec)
		b = append(b, s.head...)
		b = appendFrac(b, frac)
		b = append(b, l.hDelta...)
		b = appendInt(b, h.DeltaNs)
		b = append(b, s.mid...)
	} else {
		b = appendFrac(append(appendHopHead(b, l, h.Point), sc.date(sec)...), frac)
		b = append(b, l.hDelta...)
		b = appendInt(b, h.DeltaNs)
		b = appendMAC(append(appendMAC(append(b, l.hSrcMAC...), h.SrcMAC), l.hDstMAC...), h.DstMAC)
		b = append(b, l.hTTL...)
		b = appendOptU(b, h.TTL)
		if h.Dir != correlate.DirUnknown {
			b = append(b, l.hDir...)
			b = appendStr(b, h.Dir.String())
		}
		b = append(b, l.hFrame...)
	}
	b = appendInt(b, int64(h.Frame))
	if h.Reflection {
		b = append(b, l.hReflection...)
		b = append(b, "true"...)
	}
	if h.UncertaintyNs != 0 {
		b = append(b, l.hUncertainty...)
		b = appendInt(b, h.UncertaintyNs)
	}
	if h.ClockOffsetNs != 0 {
		b = append(b, l.hClockOffset...)
		b = appendInt(b, h.ClockOffsetNs)
	}
	// encapRep fills a HopEncap only with a type: no type, no encap (and
	// no compare of the whole struct per hop).
	if h.Encap.Type != correlate.EncapNone {
		e := &h.Encap
		b = append(b, l.hEncap...)
		b = appendStr(b, e.Type.String())
		if e.VNI.Valid {
			b = append(b, l.eVNI...)
			b = appendOptU(b, e.VNI)
		}
		b = append(b, l.eOuterSrcIP...)
		b = appendAddr(b, e.OuterSrcIP)
		b = append(b, l.eOuterDstIP...)
		b = appendAddr(b, e.OuterDstIP)
		b = append(b, l.eOuterSrcMAC...)
		b = appendMAC(b, e.OuterSrcMAC)
		b = append(b, l.eOuterDstMAC...)
		b = appendMAC(b, e.OuterDstMAC)
		b = append(b, l.eOuterTTL...)
		b = appendOptU(b, e.OuterTTL)
		b = append(b, l.eSrcPort...)
		b = appendOptU(b, e.SrcPort)
		b = append(b, l.eDstPort...)
		b = appendOptU(b, e.DstPort)
		b = append(b, '}')
	}
	return b // its closing brace goes out with what follows (hopNext, hopsClose)
}

// jsonLayout is what goes between the values of a trace: for each member,
// the comma ending the one before (none for a first member) and the quoted
// key with its colon.
type jsonLayout struct {
	tN, tProtocol, tType, tID, tSeq, tIPID, tSrcIP, tDstIP, tSrcPort, tDstPort,
	tLength, tDirection, tHops, tLostAfter, tMissing, tRewrites, tReplyTo, tRTT, tFlags string
	tNoMissingNoRewrites string // "missing":[],"rewrites":[] and "reply_to"'s key
	// Runs joining what lies between values: the trace's open to "n"'s
	// value, the hops array's open, a hop's close with the next one's
	// open, the last hop's close with the array's, rtt's close, and the
	// end of a trace without flags or drop from "flags"'s key.
	tOpen, hopsOpen, hopNext, hopsClose, rttClose, tNoFlagsClose string
	rttForward, rttTurnaround, rttReverse                        string
	rPoint, rField, rFrom, rTo                                   string
	tDrop, dLocation, dNetns, dInterface, dTime, dRule           string
	hPoint, hTime, hDelta, hSrcMAC, hDstMAC, hTTL, hDir, hFrame, hReflection,
	hUncertainty, hClockOffset, hEncap string
	// Whole runs for the commonest values: "ttl" and its value (256:
	// null), "dir" and its value with "frame"'s key.
	hTTLs                                                                                     [257]string
	hDirFrame                                                                                 [3]string
	eVNI, eOuterSrcIP, eOuterDstIP, eOuterSrcMAC, eOuterDstMAC, eOuterTTL, eSrcPort, eDstPort string
}

func newLayout() *jsonLayout {
	l := &jsonLayout{}
	first := func(k string) string { return `"` + k + `":` }
	next := func(k string) string { return "," + first(k) }
	l.tN, l.tProtocol, l.tType = first("n"), next("protocol"), next("type")
	l.tID, l.tSeq, l.tIPID = next("id"), next("seq"), next("ip_id")
	l.tSrcIP, l.tDstIP = next("src_ip"), next("dst_ip")
	l.tSrcPort, l.tDstPort = next("src_port"), next("dst_port")
	l.tLength, l.tDirection, l.tHops = next("length"), next("direction"), next("hops")
	l.tLostAfter, l.tMissing, l.tRewrites = next("lost_after"), next("missing"), next("rewrites")
	l.tReplyTo, l.tFlags = next("reply_to"), next("flags")
	l.tNoMissingNoRewrites = l.tMissing + "[]" + l.tRewrites + "[]" + l.tReplyTo
	l.tOpen = "{" + l.tN
	l.hopsOpen, l.hopNext, l.hopsClose = "[", "},", "}]"
	l.rttClose = "}"
	l.tNoFlagsClose = l.tFlags + "[]}"
	l.tRTT = next("rtt") + "{" + first("total_ns")
	l.rttForward, l.rttTurnaround, l.rttReverse = next("forward_ns"), next("turnaround_ns"), next("reverse_ns")
	l.tDrop = next("drop") + "{" + first("reason")
	l.dLocation, l.dNetns, l.dInterface = next("location"), next("netns"), next("interface")
	l.dTime, l.dRule = next("time")+`"`, next("rule")
	l.rPoint = "{" + first("point")
	l.rField, l.rFrom, l.rTo = next("field"), next("from"), next("to")
	l.hPoint = "{" + first("point")
	l.hTime, l.hDelta = next("time")+`"`, `"`+next("delta_ns")
	l.hSrcMAC, l.hDstMAC, l.hTTL = next("src_mac"), next("dst_mac"), next("ttl")
	l.hDir, l.hFrame, l.hReflection = next("dir"), next("frame"), next("reflection")
	l.hUncertainty, l.hClockOffset = next("uncertainty_ns"), next("clock_offset_ns")
	l.hEncap = next("encap") + "{" + first("type")
	for v := range 256 {
		l.hTTLs[v] = l.hTTL + strconv.Itoa(v)
	}
	l.hTTLs[256] = l.hTTL + "null"
	for d := range l.hDirFrame {
		if dir := correlate.LinkDir(d); dir != correlate.DirUnknown {
			l.hDirFrame[d] = l.hDir + string(appendStr(nil, dir.String())) + l.hFrame
		} else {
			l.hDirFrame[d] = l.hFrame
		}
	}
	l.eVNI = next("vni")
	l.eOuterSrcIP, l.eOuterDstIP = next("outer_src_ip"), next("outer_dst_ip")
	l.eOuterSrcMAC, l.eOuterDstMAC = next("outer_src_mac"), next("outer_dst_mac")
	l.eOuterTTL, l.eSrcPort, l.eDstPort = next("outer_ttl"), next("src_port"), next("dst_port")
	return l
}

var traceLayout = newLayout()

// stampCache is what an encoder keeps from one hop to the next: the date
// and clock of the last second seen (a stamp then costs its nine digits),
// and the runs of text around a hop's numbers for the points, MACs, TTLs
// and directions it wrote last (a flood's hops repeat a few of each).
type stampCache struct {
	sec    int64
	valid  bool
	n      int      // bytes of prefix
	prefix [40]byte // "2006-01-02T15:04:05." of sec
	// hops is open-addressed from hopIndex, probing on: a hop costs one
	// compare of its fields, seldom more. (Direct-mapped, two of a flood's
	// ten or so hop texts could share a slot, depending on where the point
	// names' strings lay, and rewrote each other every trace:
	// BenchmarkTraceJSON's did, at 1.6x the time.) Full to maxHopSlots,
	// it starts over.
	hops     [hopSlots]hopSlot
	hopsUsed int
	fills    int // hop texts written (TestHopCacheKeepsFloodHops)
	kinds    [4]struct {
		used  bool
		proto correlate.Proto
		typ   string
		run   []byte
	}
	nextKind int
	flows    [4]struct {
		used         bool
		src, dst     correlate.OptAddr
		sport, dport correlate.OptUint
		length       int
		dir          correlate.Direction
		run          []byte
	}
	nextFlow int
}

// hopSlot is the text of a hop at one point with one set of link fields:
// head from its "{" to its stamp's fraction (the date of sec), mid from the
// comma after "delta_ns"'s value to "frame"'s key.
type hopSlot struct {
	used     bool
	name     string
	src, dst correlate.OptMAC
	ttl      correlate.OptUint
	dir      correlate.LinkDir
	sec      int64
	base     int    // bytes of head before the date
	head     []byte // ends with the date of sec
	mid      []byte
}

// hopSlots is the size of the hop table; maxHopSlots the texts it keeps
// before starting over (three quarters: probes stay short). 192 texts: a
// flood has ten or so, a capture of many pods' traffic more; past that
// many in rotation every hop's text is written anew, as without a cache.
const (
	hopBits     = 8
	hopSlots    = 1 << hopBits
	maxHopSlots = hopSlots * 3 / 4
)

// hopIndex is where h's slot is looked for first, from its point name's
// address (the engine's hops share their point's string) and its link
// fields (in bits of their own), so the request and the reply at one point
// mostly start apart.
func hopIndex(h *correlate.Hop) int {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(h.Point))))
	x := p ^ uint64(h.SrcMAC.V[5])<<38 ^ uint64(h.DstMAC.V[5])<<46 ^ (h.TTL.V&0xff)<<54 ^ uint64(h.Dir)<<62
	return int(x * 0x9e3779b97f4a7c15 >> (64 - hopBits)) // the product's top bits: all of x's mixed
}

// hop is the slot of h, a hop stamped in second sec, its text filled.
func (c *stampCache) hop(l *jsonLayout, h *correlate.Hop, sec int64) *hopSlot {
	for i := hopIndex(h); ; i = (i + 1) % hopSlots {
		s := &c.hops[i]
		if !s.used {
			if c.hopsUsed == maxHopSlots {
				c.resetHops()
				return c.hop(l, h, sec)
			}
			c.hopsUsed++
			c.fill(s, l, h, sec)
			return s
		}
		if s.src == h.SrcMAC && s.dst == h.DstMAC && s.ttl == h.TTL && s.dir == h.Dir && sameString(s.name, h.Point) {
			if s.sec != sec {
				s.head = append(s.head[:s.base], c.date(sec)...)
				s.sec = sec
			}
			return s
		}
	}
}

// resetHops empties the hop table, keeping the slots' buffers.
func (c *stampCache) resetHops() {
	for i := range c.hops {
		c.hops[i].used = false
	}
	c.hopsUsed = 0
}

// fill makes s h's slot (apart from the fast path, so hop keeps its
// arguments in registers).
func (c *stampCache) fill(s *hopSlot, l *jsonLayout, h *correlate.Hop, sec int64) {
	c.fills++
	s.used, s.name, s.src, s.dst, s.ttl, s.dir = true, h.Point, h.SrcMAC, h.DstMAC, h.TTL, h.Dir
	s.head = appendHopHead(s.head[:0], l, h.Point)
	s.base = len(s.head)
	s.head = append(s.head, c.date(sec)...)
	s.sec = sec
	r := appendMAC(append(appendMAC(append(s.mid[:0], l.hSrcMAC...), h.SrcMAC), l.hDstMAC...), h.DstMAC)
	if h.TTL.Valid {
		r = append(r, l.hTTLs[h.TTL.V]...)
	} else {
		r = append(r, l.hTTLs[256]...)
	}
	s.mid = append(r, l.hDirFrame[h.Dir]...)
}

// appendHopHead writes a hop from its "{" to its stamp's opening quote.
func appendHopHead(b []byte, l *jsonLayout, point string) []byte {
	return append(appendStr(append(b, l.hPoint...), point), l.hTime...)
}

// sameString is a == b, without comparing the bytes of one string with
// themselves (a hop's point name is its point's string).
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// kind is the run of a trace from "protocol"'s key to "id"'s value.
func (c *stampCache) kind(l *jsonLayout, t *correlate.Trace) []byte {
	for i := range c.kinds {
		if k := &c.kinds[i]; k.used && k.proto == t.Protocol && k.typ == t.Type {
			return k.run
		}
	}
	k := &c.kinds[c.nextKind]
	c.nextKind = (c.nextKind + 1) % len(c.kinds)
	k.used, k.proto, k.typ = true, t.Protocol, t.Type
	r := appendStr(append(k.run[:0], l.tProtocol...), t.Protocol.String())
	k.run = append(appendStr(append(r, l.tType...), t.Type), l.tID...)
	return k.run
}

// flow is the run of a trace from "src_ip"'s key to "hops"' value:
// addresses, ports, length and direction (a flood's traces share them).
func (c *stampCache) flow(l *jsonLayout, t *correlate.Trace) []byte {
	for i := range c.flows {
		if f := &c.flows[i]; f.used && f.src == t.SrcIP && f.dst == t.DstIP && f.sport == t.SrcPort &&
			f.dport == t.DstPort && f.length == t.Length && f.dir == t.Direction {
			return f.run
		}
	}
	f := &c.flows[c.nextFlow]
	c.nextFlow = (c.nextFlow + 1) % len(c.flows)
	f.used, f.src, f.dst, f.sport, f.dport, f.length, f.dir = true, t.SrcIP, t.DstIP, t.SrcPort, t.DstPort, t.Length, t.Direction
	r := appendAddr(append(f.run[:0], l.tSrcIP...), t.SrcIP)
	r = appendAddr(append(r, l.tDstIP...), t.DstIP)
	r = appendOptU(append(r, l.tSrcPort...), t.SrcPort)
	r = appendOptU(append(r, l.tDstPort...), t.DstPort)
	r = appendInt(append(r, l.tLength...), int64(t.Length))
	r = appendStr(append(r, l.tDirection...), t.Direction.String())
	f.run = append(r, l.tHops...)
	return f.run
}

// append writes the stamp ns (UTC, nanoseconds, "Z").
func (c *stampCache) append(b []byte, ns int64) []byte {
	sec, frac := splitStamp(ns)
	return appendFrac(append(b, c.date(sec)...), frac)
}

// date is "2006-01-02T15:04:05." of the second sec, formatted once per
// second.
func (c *stampCache) date(sec int64) []byte {
	if !c.valid || sec != c.sec {
		c.n = len(time.Unix(sec, 0).UTC().AppendFormat(c.prefix[:0], "2006-01-02T15:04:05."))
		c.sec, c.valid = sec, true
	}
	return c.prefix[:c.n]
}

// splitStamp is ns as whole seconds and nanoseconds 0 to 999999999.
func splitStamp(ns int64) (sec int64, frac uint32) {
	sec, f := ns/1e9, ns%1e9
	if f < 0 {
		sec, f = sec-1, f+1e9
	}
	return sec, uint32(f)
}

// appendFrac writes a stamp's nine digits of nanoseconds and its "Z".
func appendFrac(b []byte, f uint32) []byte {
	// Pointers into the table: copies of its [3]byte entries go through
	// the stack in 2- and 1-byte stores read back across both, which the
	// CPU cannot forward (a third of appendHop's time).
	hi, mid, lo := &digits3[f/1e6], &digits3[f/1e3%1e3], &digits3[f%1e3]
	return append(b, hi[0], hi[1], hi[2], mid[0], mid[1], mid[2], lo[0], lo[1], lo[2], 'Z')
}

// digits3 is every number below 1000 as three digits.
var digits3 = func() (d [1000][3]byte) {
	for i := range d {
		d[i] = [3]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)}
	}
	return d
}()

func appendOptU(b []byte, o correlate.OptUint) []byte {
	if !o.Valid {
		return append(b, "null"...)
	}
	return appendUint(b, o.V)
}

func appendAddr(b []byte, o correlate.OptAddr) []byte {
	if !o.V.IsValid() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = o.V.AppendTo(b)
	return append(b, '"')
}

func appendMAC(b []byte, o correlate.OptMAC) []byte {
	if !o.Valid {
		return append(b, "null"...)
	}
	const hexdigits = "0123456789abcdef"
	var m [19]byte
	m[0], m[18] = '"', '"'
	for i, v := range o.V {
		m[1+3*i], m[2+3*i] = hexdigits[v>>4], hexdigits[v&0xf]
		if i < 5 {
			m[3+3*i] = ':'
		}
	}
	return append(b, m[:]...)
}

// appendStrs writes a string array.
func appendStrs(b []byte, ss []string) []byte {
	if len(ss) == 0 {
		return append(b, "[]"...)
	}
	for i, s := range ss {
		b = append(b, "[,"[min(i, 1)])
		b = appendStr(b, s)
	}
	return append(b, ']')
}

// appendStr quotes s. Plain printable ASCII is written as is; anything
// that needs escaping goes through encoding/json, so the rules stay its own.
func appendStr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(s)
			return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendTraceJSON appends t as the JSON report writes each trace (compact,
// one line), for tools that check a report trace by trace.
func AppendTraceJSON(b []byte, t *correlate.Trace) []byte { return appendTrace(b, t) }
