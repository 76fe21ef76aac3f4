package correlate

import (
	"fmt"
	"net/netip"

	"github.com/pathtrace/pathtrace/internal/ring"
)

// DefaultWindow is how far apart in time two sightings of one frame may be.
const DefaultWindow int64 = 1e9

// MaxPoints bounds the points of one analysis (a bit set per trace).
const MaxPoints = 64

// maxHops bounds one trace, so a looping broadcast cannot grow it forever.
const maxHops = 4 * MaxPoints

// PointSpec describes one capture point, in path order.
type PointSpec struct {
	Name      string
	Interface string // "" when the capture records no name (reported as null)
	IfIndex   int    // < 0 when unknown
	Source    string // file name, or "netns NAME" for live points
	Node      string // the node the point is on, where known (a path across nodes)
	MTU       int    // 0 when unknown
	Snaplen   int
	Drops     uint64
	HasDrops  bool
	// CoverFrom/CoverTo, when set (live capture, pcapng statistics), bound
	// the time the point was capturing more precisely than its frames do.
	CoverFrom, CoverTo int64
	// Clock is the point's clock group: points of one host share one
	// (a multi-interface file, a live run). Frames reach the engine on the
	// reference clock already; ClockUncertainty is how far the correction
	// that put them there may be off (0: none was applied).
	Clock            int
	ClockUncertainty int64
	// OwnFramesOnly: a bridge captured without promiscuous mode, which sees
	// only the frames to and from its own MAC and floods: a unicast frame
	// bridged between two of its ports is not expected there.
	OwnFramesOnly bool
}

// Owner names what a MAC or IP address belongs to, and where on the path.
type Owner struct {
	Point int    // position of the point that owns it
	Label string // "pod2 eth0"
}

// Config configures an Engine.
type Config struct {
	Points []PointSpec
	Window int64 // match window in ns; 0 means DefaultWindow
	// Owners of MACs and IP addresses known before the analysis (live
	// discovery). Offline, owners are learned from where frames originate.
	MACOwners map[MAC]Owner
	IPOwners  map[netip.Addr]Owner
	// OnePath: the points are one discovered path, so a frame that entered
	// it goes on to its end (or its destination) — a live run. Offline the
	// points are whatever files were given: a frame's way is only what its
	// destination or its flow is known to reach.
	OnePath bool
	// ClockOffsets are the corrections the frames' times already carry
	// (estimated or declared), for the report; ClockProblems the pairs of
	// clocks that could not be compared.
	ClockOffsets  []ClockOffset
	ClockProblems []ClockProblem
	// CheckOrder: the points' order is the command line's (files listed
	// one by one): warn when the traffic clearly follows another
	// (ordercheck.go); OrderAdvice says which, after Finish. With a
	// Sampler, only OrderAdvice.
	CheckOrder bool
	// Sampler, if set, makes the engine the clock pre-pass's: each
	// finished trace's crossings go to it (made for these points), and
	// nothing else of the trace is judged, counted or built; the sink is
	// not called. (Building every trace's report for ClockSampler.Add, and
	// its statistics, took a sixth of set1x's pre-pass.)
	Sampler *ClockSampler
	// Async builds each trace's report and calls the sink on a goroutine
	// of the engine's (still in trace order; Finish waits for it), so the
	// caller's goroutine only correlates. The sink is New's: SetSink(nil)
	// still stops handing traces out.
	Async bool
	// Helped (with Async): the builder has no goroutine of its own; its
	// batches are built by goroutines that call Helper().Help instead of
	// waiting, and by the correlator's when it has no empty batch left
	// (async.go).
	Helped bool
}

// Sink receives each finished trace, in trace-number order. The Trace is
// reused after Sink returns; call Clone to keep it.
type Sink func(*Trace)

// hop is one sighting of a trace's frame. It is kept small (one cache
// line): a flood's traces are emitted after their hops left the cache.
// What only the first hop's frame says (IP id, length) lives in the trace,
// and the hops' addresses in a per-trace table (they rarely change).
type hop struct {
	point    int
	time     int64 // on the reference clock: deltas and matching
	stamp    int64 // the capture's own: reported
	num      int32
	ipLen    int32
	src, dst MAC
	sport    uint16
	dport    uint16
	echoID   uint16
	dir      LinkDir
	ttl      uint8
	encap    uint8 // 1 + index into trace.encaps; 0: not encapsulated
	ips      uint8 // index into trace.ips
	hasSrc   bool
	hasDst   bool
	hasTTL   bool
	hasPorts bool
	hasEcho  bool
	frag     bool
	refl     bool
}

type trace struct {
	// What expiry and matching read first, together at the start.
	last     int64
	first    int64  // the earliest hop's time (hops need not come in time order)
	seen     uint64 // points with a non-reflection hop
	n        int
	hops     []hop
	nextSame *trace // next active trace with the same key
	flow     *flow  // nil: the frame has no addresses, or the flow table is full
	dup      bool
	hasIPID  bool   // the first hop's frame carried an IPv4 id:
	ipid     uint16 // this one
	// ttl is the TTL of the hops that carry one while they all agree
	// (ttlMixed once they do not): a hop with that TTL cannot show a
	// routing step, so addHop skips comparing it with its neighbours, and
	// the TTLs cannot tell the trace's direction (ttlDirection).
	ttl      uint8
	hasTTL   bool
	ttlMixed bool
	wireLen  int32  // the first hop's frame length
	kh       uint64 // keyHash(&key): its chain in the active map
	key      Key
	encaps   []Encap  // outer headers of the hops seen in a tunnel (few: the hop stays small)
	ips      []ipPair // the hops' addresses, each pair once in a row (hop.ips indexes it)
}

// ipPair is a hop's source and destination address.
type ipPair struct{ src, dst netip.Addr }

// Engine correlates frames into traces. Feed it frames in (nearly) time
// order with Add; it emits each trace once no frame within the window can
// still join it, so memory depends on the traffic rate and the window, not on
// the input size.
type Engine struct {
	cfg    Config
	window int64
	sink   Sink
	async  *builder // Config.Async: builds and hands out the traces

	cov    []coverage
	active activeTable       // by keyHash; a chain holds every active trace whose key hashes there
	queue  ring.Ring[*trace] // active traces in creation (= trace number) order
	free   []*trace
	next   int // next trace number
	// probes no point saw, emitted last by Finish
	lostProbes []lostProbe
	// dirCertain: the trace being emitted got its direction from its TTL
	// or from configured owners (crossing sets it)
	dirCertain bool
	mark       int64

	// learned owners: MAC/IP → per-point origin counts
	macOrigin map[MAC]*origins
	ipOrigin  map[netip.Addr]*origins
	macSeen   originCache[MAC]
	ipSeen    originCache[netip.Addr]

	echoReq map[uint64]echoInfo // by echoKey.hash
	echoQ   ring.Ring[pending]
	echoQ0  uint64 // the number of echoQ's front: requests queued before it
	arpReq  map[arpKey]arpInfo
	arpQ    ring.Ring[arpKey]

	flows           map[flowKey]*flow
	lastFlowKey     flowKey // the flow flowOf found last (a flood's frames are one conversation)
	lastFlow        *flow
	offPathOnePoint int               // off-path traces seen at a single point
	order           *orderCheck       // with Config.CheckOrder
	shared          [MaxPoints]uint64 // bit q of shared[p]: p saw a frame q had seen before it

	stats       map[[2]int]*latency
	lat         []*latency // the same, at from*len(points)+to
	byProto     [256]int   // traces per protocol, for sum.ByProto
	anomalies   map[anomalyKey]*Anomaly
	anomOrder   []anomalyKey
	warnings    []string
	sum         Summary
	out         Trace
	scratch     []int
	prevScratch []int
	rtt         RTT
	all         uint64           // seen-mask of a trace that crossed every point
	routed      uint64           // bit p: a routing hop (TTL decrement) lies between p-1 and p
	overMTU     map[int][2]int32 // point → smallest and largest IP length over its MTU
	bypass      bypassCounts     // bypass.go
	missed      uint64           // the points the trace being judged crossed unseen
	// sameClock: bit q of sameClock[p] when points p and q (q != p) share
	// a clock, so a trace's hops are checked for one without reading the
	// points' specs.
	sameClock [MaxPoints]uint64
	// The learned owners of the trace being emitted (source, destination),
	// found once per trace: direction and loss both ask. ownersOf: the
	// trace they are for.
	ownersOf       *trace
	ownSrc, ownDst int
	manyCands      []candidate // match's, for a chain longer than its own array
}

type echoKey struct {
	proto Proto
	seq   uint32
	sum   uint64 // payload hash
	len   uint32
}

// pending is a request waiting for its answer, in arrival order;
// answered: its reply came (it leaves the queue once at the front).
type pending struct {
	h        uint64
	last     int64
	answered bool
}

func (k echoKey) hash() uint64 {
	return keyHash(&Key{Proto: k.proto, Seq: k.seq, Hash: k.sum, Len: k.len})
}

type echoInfo struct {
	key         echoKey
	q           uint64 // its number in echoQ
	n           int
	firstPoint  int
	first, last int64
	settled     bool // reported lost already (an answered request leaves the map)
	lastSeen    int
}

type arpKey struct{ sender, target netip.Addr }

type arpInfo struct {
	n        int
	time     int64
	answered bool
	point    int
}

type anomalyKey struct {
	kind  AnomalyKind
	point string
}

// New returns an Engine for the points in cfg.
func New(cfg Config, sink Sink) (*Engine, error) {
	if len(cfg.Points) == 0 {
		return nil, fmt.Errorf("no capture points")
	}
	if len(cfg.Points) > MaxPoints {
		return nil, fmt.Errorf("%d capture points: at most %d are supported", len(cfg.Points), MaxPoints)
	}
	if cfg.Sampler != nil && len(cfg.Sampler.points) != len(cfg.Points) {
		return nil, fmt.Errorf("clock sampler for %d points, engine for %d", len(cfg.Sampler.points), len(cfg.Points))
	}
	w := cfg.Window
	if w <= 0 {
		w = DefaultWindow
	}
	e := &Engine{
		cfg:       cfg,
		window:    w,
		sink:      sink,
		cov:       make([]coverage, len(cfg.Points)),
		next:      1,
		macOrigin: make(map[MAC]*origins),
		ipOrigin:  make(map[netip.Addr]*origins),
		echoReq:   make(map[uint64]echoInfo),
		arpReq:    make(map[arpKey]arpInfo),
		flows:     make(map[flowKey]*flow),
		stats:     make(map[[2]int]*latency),
		lat:       make([]*latency, len(cfg.Points)*len(cfg.Points)),
		anomalies: make(map[anomalyKey]*Anomaly),
		overMTU:   make(map[int][2]int32),
	}
	e.sum.ByProto = make(map[string]int)
	if cfg.CheckOrder && len(cfg.Points) <= orderPoints {
		e.order = &orderCheck{}
	}
	e.all = 1<<uint(len(cfg.Points)) - 1
	for p := range cfg.Points {
		for q := range cfg.Points {
			if q != p && cfg.Points[q].Clock == cfg.Points[p].Clock {
				e.sameClock[p] |= 1 << uint(q)
			}
		}
	}
	if cfg.Async && sink != nil {
		e.startBuilder()
	}
	return e, nil
}

// SetSink replaces the sink, for the traces emitted from now on; nil stops
// handing out traces (a report that keeps the first few has them), which
// spares building them.
func (e *Engine) SetSink(s Sink) { e.sink = s }

// Warn records a warning for the result (e.g. from a reader).
func (e *Engine) Warn(msg string) { e.warnings = append(e.warnings, msg) }

// Close tells the engine no more frames will come from point p. early
// says the capture ended before the others (a truncated or broken file):
// then p's coverage ends at its last frame. Otherwise captures taken
// together are taken to have run until the end of the input, since a pcap
// file records no stop time and a quiet point (everything after its last
// frame dropped before it) must still count as capturing.
func (e *Engine) Close(p int, early bool) {
	if p >= 0 && p < len(e.cov) {
		e.cov[p].early = early
	}
}

// CutShort is Close for a source that was cut short (a file that ends
// inside a record, a broken block): why says where, in the reader's words.
// The point's coverage ends at its last frame and the verdict names it, as
// whatever it missed after the cut is unknown.
func (e *Engine) CutShort(p int, why string) {
	if p >= 0 && p < len(e.cov) {
		e.cov[p].early, e.cov[p].cut = true, why
	}
}

// SetDrops records kernel drop counters for point p.
func (e *Engine) SetDrops(p int, drops uint64) {
	if p >= 0 && p < len(e.cfg.Points) {
		e.cfg.Points[p].Drops, e.cfg.Points[p].HasDrops = drops, true
	}
}

// SetCoverage records the time point p was capturing (live sockets armed and
// closed), which counts even when the point saw no frame then.
func (e *Engine) SetCoverage(p int, from, to int64) {
	if p >= 0 && p < len(e.cfg.Points) {
		e.cfg.Points[p].CoverFrom, e.cfg.Points[p].CoverTo = from, to
	}
}

// Add feeds one frame. Frames with Key.Proto == ProtoNone only count toward
// their point's coverage.
func (e *Engine) Add(f *Frame) {
	p := f.Point
	if p < 0 || p >= len(e.cov) {
		return
	}
	c := &e.cov[p]
	if c.frames == 0 || f.Time < c.first {
		c.first, c.stamps[0] = f.Time, f.stamp()
	}
	if c.frames == 0 || f.Time > c.last {
		c.last, c.stamps[1] = f.Time, f.stamp()
	}
	c.frames++
	e.sum.Frames++
	if f.CapLen < f.WireLen {
		c.truncated++
		c.cutTo = max(c.cutTo, f.CapLen)
	}
	if f.Time > e.mark {
		e.mark = f.Time
		e.expire()
	}
	if f.Key.Proto == ProtoNone {
		return
	}
	c.decoded++
	e.sum.Decoded++
	switch f.Encap.Type {
	case EncapESP:
		c.esp++
	case EncapWireGuard:
		c.wg++
	}
	if f.HasSrcMAC {
		c.countMAC(f.SrcMAC)
	}
	e.match(f)
}

// expire emits traces no frame can join any more: those whose last hop is
// more than a window behind the newest stamp. Traces leave in number order,
// so a long-lived head holds back younger ones by at most one window.
func (e *Engine) expire() {
	for e.queue.Len() > 0 && e.done(*e.queue.Front()) {
		e.pop()
	}
	e.expireRequests()
}

// settle is how long a trace that missed a point is kept after its last hop
// before the points that missed it may be judged to have moved on: a frame
// held up inside the path (a stalled softirq) for less than this still
// joins.
const settle int64 = 100e6

// settleComplete is how long a trace that reached every point is kept: all
// that can still join it is a duplicate (within dupWindow) or a reflection
// (within reflectWindow; hairpin copies come µs later), and frames reach the
// correlator in stamp order. Shorter than settle, so a flood's traces leave
// while their hops are still in cache.
const settleComplete int64 = reflectWindow

// done reports whether no frame can still join t: a window has passed since
// its last hop; or it crossed every point and has settled; or it has had
// time to settle and every point it missed has moved on past it. That keeps
// memory near rate × settle instead of rate × window, also when frames are
// lost.
func (e *Engine) done(t *trace) bool {
	if t.last+e.window < e.mark {
		return true
	}
	if t.seen == e.all {
		return t.last+min(settleComplete, e.window) < e.mark
	}
	if t.last+min(settle, e.window) >= e.mark {
		return false
	}
	// Every point it has not reached has since seen frames stamped well
	// after it: frames leave a point in the order they reached it, so it
	// will not appear there any more. (A lost frame then does not hold
	// every younger trace for a whole window.)
	for p := range e.cov {
		if t.seen&(1<<uint(p)) == 0 && e.cov[p].last <= t.last+settle {
			return false
		}
	}
	return true
}

func (e *Engine) pop() {
	t := e.queue.Pop()
	// unlink from the key chain
	kh := t.kh
	if head := e.active.get(kh); head == t {
		if t.nextSame == nil {
			e.active.del(kh)
		} else {
			e.active.set(kh, t.nextSame)
		}
	} else {
		for p := head; p != nil; p = p.nextSame {
			if p.nextSame == t {
				p.nextSame = t.nextSame
				break
			}
		}
	}
	t.nextSame = nil
	e.emit(t)
	e.free = append(e.free, t)
}

// Flush emits every trace still open: no more frames will come. Finish
// calls it; a caller that must see every trace before adding lost probes
// calls it first.
func (e *Engine) Flush() {
	for e.queue.Len() > 0 {
		e.pop()
	}
	e.mark = 1<<63 - 1
	e.expireRequests()
	if e.async != nil {
		e.async.wait()
		e.async = nil
	}
}

// Finish emits every remaining trace and returns the result without traces
// (they went to the sink).
func (e *Engine) Finish() *Result {
	e.Flush()
	if e.order != nil && e.cfg.Sampler == nil {
		if msg := e.order.verdict(e.cfg.Points); msg != "" {
			e.Warn(msg)
		}
	}
	for i := range e.lostProbes {
		e.emitLostProbe(&e.lostProbes[i])
	}
	for p, n := range e.byProto {
		if n > 0 {
			e.sum.ByProto[Proto(p).String()] += n
			e.byProto[p] = 0
		}
	}
	return e.result()
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}
