package correlate

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
)

// SchemaVersion is the "version" field of the JSON result.
const SchemaVersion = 1

// Timestamp is a capture stamp in ns since the Unix epoch. It marshals as
// RFC 3339 UTC with exactly nine fractional digits, so stamps survive JSON
// without float rounding.
type Timestamp int64

func (t Timestamp) String() string {
	return time.Unix(0, int64(t)).UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

func (t Timestamp) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, t.String()), nil
}

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	*t = Timestamp(tm.UnixNano())
	return err
}

// Nullable values: reports print null where a capture does not record a field,
// never a guess. They are values, not pointers, so a Trace can be reused
// without allocating.

type OptMAC struct {
	V     MAC
	Valid bool
}

func (o OptMAC) MarshalJSON() ([]byte, error) {
	if !o.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendQuote(nil, o.V.String()), nil
}

type OptAddr struct{ V netip.Addr }

func (o OptAddr) MarshalJSON() ([]byte, error) {
	if !o.V.IsValid() {
		return []byte("null"), nil
	}
	return strconv.AppendQuote(nil, o.V.String()), nil
}

type OptUint struct {
	V     uint64
	Valid bool
}

func (o OptUint) MarshalJSON() ([]byte, error) {
	if !o.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendUint(nil, o.V, 10), nil
}

type OptInt struct {
	V     int64
	Valid bool
}

func (o OptInt) MarshalJSON() ([]byte, error) {
	if !o.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, o.V, 10), nil
}

type OptString struct {
	V     string
	Valid bool
}

func (o OptString) MarshalJSON() ([]byte, error) {
	if !o.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendQuote(nil, o.V), nil
}

// The nullable values read back what they write: null stays invalid.

func (o *OptMAC) UnmarshalJSON(b []byte) error    { return unmarshalOpt(b, &o.V, &o.Valid) }
func (o *OptAddr) UnmarshalJSON(b []byte) error   { return unmarshalOpt(b, &o.V, new(bool)) }
func (o *OptUint) UnmarshalJSON(b []byte) error   { return unmarshalOpt(b, &o.V, &o.Valid) }
func (o *OptInt) UnmarshalJSON(b []byte) error    { return unmarshalOpt(b, &o.V, &o.Valid) }
func (o *OptString) UnmarshalJSON(b []byte) error { return unmarshalOpt(b, &o.V, &o.Valid) }

func unmarshalOpt[T any](b []byte, v *T, valid *bool) error {
	if string(b) == "null" {
		var zero T
		*v, *valid = zero, false
		return nil
	}
	*valid = true
	return json.Unmarshal(b, v)
}

func someU(v uint64) OptUint    { return OptUint{v, true} }
func someI(v int64) OptInt      { return OptInt{v, true} }
func someS(v string) OptString  { return OptString{v, true} }
func someMAC(v MAC) OptMAC      { return OptMAC{v, true} }
func addr(v netip.Addr) OptAddr { return OptAddr{v} }
func someT(v int64) *Timestamp  { t := Timestamp(v); return &t }

// Result is everything an analysis found. The JSON schema is documented in
// the README; Version changes when a field changes meaning.
type Result struct {
	Version      int           `json:"version"`
	Points       []PointRep    `json:"points"`
	ClockOffsets []ClockOffset `json:"clock_offsets"`
	Traces       []Trace       `json:"traces"`
	HopLatency   []HopStat     `json:"hop_latency"`
	Anomalies    []Anomaly     `json:"anomalies"`
	Warnings     []string      `json:"warnings"`
	Summary      Summary       `json:"summary"`
}

// PointRep describes one capture point and what it covered.
type PointRep struct {
	Name      string    `json:"name"`
	Interface OptString `json:"interface"` // as the capture records it; null when it does not (SLL2 keeps only an ifindex)
	IfIndex   OptInt    `json:"ifindex"`
	Source    string    `json:"source"`         // file, or namespace for a live point
	Node      string    `json:"node,omitempty"` // the node the point is on, where known
	MTU       OptInt    `json:"mtu"`
	MACs      []MACSeen `json:"macs"` // source MACs seen at this point, with owners where known
	Coverage  Coverage  `json:"coverage"`
}

type MACSeen struct {
	MAC    MAC    `json:"mac"`
	Owner  string `json:"owner,omitempty"` // e.g. "pod2 eth0"
	Frames int    `json:"frames"`
}

// Coverage is the window a point was capturing; frames outside it are neither
// lost nor missing there.
type Coverage struct {
	First       *Timestamp `json:"first"`
	Last        *Timestamp `json:"last"`
	Frames      int        `json:"frames"`       // frames read at this point
	Decoded     int        `json:"decoded"`      // frames that carried a key the correlator uses
	KernelDrops OptUint    `json:"kernel_drops"` // as the capture records it (pcapng ISB, live socket stats)
	Truncated   int        `json:"truncated"`    // frames cut by the snaplen
	Snaplen     OptInt     `json:"snaplen"`
	Cut         string     `json:"cut,omitempty"` // the capture file was cut short: where, in the reader's words
}

// Trace is one frame followed across the points that saw it. A Trace passed
// to a Sink is reused after the call returns: keep a Clone.
type Trace struct {
	N         int        `json:"n"` // 1-based, in order of first sighting
	Protocol  Proto      `json:"protocol"`
	Type      string     `json:"type"`
	ID        OptUint    `json:"id"`    // ICMP echo id at the first hop (rewrites list changes)
	Seq       OptUint    `json:"seq"`   // ICMP echo seq, TCP seq
	IPID      OptUint    `json:"ip_id"` // IPv4 identification at the first hop
	SrcIP     OptAddr    `json:"src_ip"`
	DstIP     OptAddr    `json:"dst_ip"`
	SrcPort   OptUint    `json:"src_port"`
	DstPort   OptUint    `json:"dst_port"`
	Length    int        `json:"length"` // frame length on the wire at the first hop
	Direction Direction  `json:"direction"`
	Hops      []Hop      `json:"hops"`
	LostAfter string     `json:"lost_after,omitempty"`
	Missing   []string   `json:"missing"`
	Rewrites  []Rewrite  `json:"rewrites"`
	ReplyTo   OptInt     `json:"reply_to"` // N of the request an echo reply answers
	RTT       *RTT       `json:"rtt,omitempty"`
	Flags     []Flag     `json:"flags"`
	Drop      *TraceDrop `json:"drop,omitempty"` // why the kernel freed it (live runs watching drops)

	key Key // what its frames were matched by (drops join by it)
	// dirCertain: its direction came from its TTL or configured owners,
	// not from stamps (clock estimation trusts only such crossings)
	dirCertain bool
}

// reset empties t for the next trace, keeping its slices' memory. Cleared in
// place: a composite literal would be built aside and copied over, per trace.
func (t *Trace) reset() {
	hops, missing, rewrites, flags := t.Hops[:0], t.Missing[:0], t.Rewrites[:0], t.Flags[:0]
	*t = Trace{}
	t.Hops, t.Missing, t.Rewrites, t.Flags = hops, missing, rewrites, flags
}

// Hop is the frame at one point.
type Hop struct {
	Point      string    `json:"point"`
	Time       Timestamp `json:"time"`
	DeltaNs    int64     `json:"delta_ns"` // from the previous hop in crossing order; 0 at the first
	SrcMAC     OptMAC    `json:"src_mac"`
	DstMAC     OptMAC    `json:"dst_mac"`
	TTL        OptUint   `json:"ttl"`
	Dir        LinkDir   `json:"dir,omitempty"` // "in" | "out" where the capture records it
	Frame      int       `json:"frame"`         // record number in the point's source
	Reflection bool      `json:"reflection,omitempty"`
	// UncertaintyNs: the previous hop was seen on another clock, whose
	// offset was corrected only to within this. ClockOffsetNs: what was
	// subtracted from Time to read it on the reference clock (deltas use
	// that).
	UncertaintyNs int64    `json:"uncertainty_ns,omitempty"`
	ClockOffsetNs int64    `json:"clock_offset_ns,omitempty"`
	Encap         HopEncap `json:"encap,omitzero"` // only on a hop seen encapsulated
}

// HopEncap is the tunnel a hop saw the frame in: the outer headers. A
// field the tunnel or the capture lacks is null (VNI: left out).
type HopEncap struct {
	Type        EncapType `json:"type"`
	VNI         OptUint   `json:"vni,omitzero"`
	OuterSrcIP  OptAddr   `json:"outer_src_ip"`
	OuterDstIP  OptAddr   `json:"outer_dst_ip"`
	OuterSrcMAC OptMAC    `json:"outer_src_mac"`
	OuterDstMAC OptMAC    `json:"outer_dst_mac"`
	OuterTTL    OptUint   `json:"outer_ttl"`
	SrcPort     OptUint   `json:"src_port"`
	DstPort     OptUint   `json:"dst_port"`
}

func encapRep(e *Encap) HopEncap {
	r := HopEncap{Type: e.Type, OuterSrcIP: addr(e.SrcIP), OuterDstIP: addr(e.DstIP)}
	if e.HasVNI {
		r.VNI = someU(uint64(e.VNI))
	}
	if e.HasSrcMAC {
		r.OuterSrcMAC = someMAC(e.SrcMAC)
	}
	if e.HasDstMAC {
		r.OuterDstMAC = someMAC(e.DstMAC)
	}
	if e.SrcIP.IsValid() {
		r.OuterTTL = someU(uint64(e.TTL))
	}
	switch e.Type {
	case EncapVXLAN, EncapGENEVE, EncapUDP, EncapWireGuard:
		r.SrcPort, r.DstPort = someU(uint64(e.SrcPort)), someU(uint64(e.DstPort))
	case EncapESP:
		if e.DstPort != 0 { // ESP in UDP
			r.SrcPort, r.DstPort = someU(uint64(e.SrcPort)), someU(uint64(e.DstPort))
		}
	}
	return r
}

// Rewrite is a field outside the key that changed between two hops.
type Rewrite struct {
	Point string `json:"point"` // where the new value was first seen
	Field Field  `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// RTT splits an echo round trip, measured at the point where the request was
// first seen.
type RTT struct {
	TotalNs      int64 `json:"total_ns"`      // request first hop → reply's hop at that same point
	ForwardNs    int64 `json:"forward_ns"`    // request first → last hop
	TurnaroundNs int64 `json:"turnaround_ns"` // request last hop → reply first hop
	ReverseNs    int64 `json:"reverse_ns"`    // reply first → last hop
}

// HopStat is latency between two adjacent hops in crossing order, per direction.
type HopStat struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
	MinNs int64  `json:"min_ns"`
	P50Ns int64  `json:"p50_ns"`
	P99Ns int64  `json:"p99_ns"`
	MaxNs int64  `json:"max_ns"`
	Exact bool   `json:"exact"` // false once samples exceeded the exact buffer and a histogram (< 0.8% error) took over
}

// Anomaly is a named finding, aggregated per kind and point.
type Anomaly struct {
	Kind     AnomalyKind `json:"kind"`
	Severity Severity    `json:"severity"` // Warning sets exit status 1
	Point    string      `json:"point,omitempty"`
	Count    int         `json:"count"`
	Traces   []int       `json:"traces"` // the first few trace numbers
	Message  string      `json:"message"`
}

// Summary counts and the one-line verdict.
type Summary struct {
	Frames   int `json:"frames"`  // frames read at all points
	Decoded  int `json:"decoded"` // frames with a key
	Traces   int `json:"traces"`
	Complete int `json:"complete"` // traces with no loss, no missing point, not off-path
	Lost     int `json:"lost"`
	WithGaps int `json:"with_gaps"`
	// OffPath traces stopped short of capturing points their flow was never
	// seen at: traffic that does not take the path between the points
	// (health checks, API server on one node's NIC), not loss.
	OffPath      int            `json:"off_path"`
	OffPathFlows int            `json:"off_path_flows"`
	FilteredOut  int            `json:"filtered_out,omitempty"` // frames --filter left out: read, not correlated
	ByProto      map[string]int `json:"by_protocol"`
	Verdict      string         `json:"verdict"`
	Clean        bool           `json:"clean"` // exit status 0
}
