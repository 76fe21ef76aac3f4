package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/afpacket"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/netns"
	"github.com/pathtrace/pathtrace/report"
)

// Live tracing defaults.
const (
	// PassiveRingBytes is the ring per point with Passive: the endpoints'
	// own traffic may be a flood (16 MiB rings kept four parallel `ping -f`
	// at five points without drops, the points decoding straight from
	// them; bench/live.sh); probes are a few frames.
	PassiveRingBytes = 16 << 20
	// DefaultProbeSize is ping's echo payload, in bytes.
	DefaultProbeSize = 56
	// MinProbeSize and MaxProbeSize bound a probe's payload: the tag that
	// tells the run's probes apart ("pathtrace" and 8 random bytes), the
	// prober's seq and stamp (10 bytes); at most what one IPv4 packet holds.
	MinProbeSize = len(probeTagText) + 8 + 10
	MaxProbeSize = 65535 - 20 - 8

	probeTagText = "pathtrace"
)

// TraceOptions describe one live trace of a discovered path.
type TraceOptions struct {
	Path     *discover.Path
	Count    int           // echo probes to send (ignored with Passive)
	Size     int           // echo payload bytes, MinProbeSize to MaxProbeSize (0: DefaultProbeSize)
	Interval time.Duration // between probes
	Timeout  time.Duration // wait for the last reply
	Passive  bool          // send nothing: correlate the endpoints' own traffic
	// TCP, if set, makes the probes TCP SYNs to this address and port (a
	// Service's ClusterIP, which kube-proxy rewrites for TCP but never for
	// ICMP echo) instead of echo requests to the destination.
	TCP      netip.AddrPort
	Duration time.Duration // capture time with Passive
	Window   time.Duration // match window
	// RingBytes per point (<= 0: afpacket.DefaultRingBytes, or
	// PassiveRingBytes with Passive); SpoolBytes bounds the frames captured
	// but not yet correlated (<= 0: DefaultSpoolBytes), SpoolMemory what
	// of it stays in memory, the rest in a file (0: DefaultSpoolMemory;
	// < 0: all of it).
	RingBytes, SpoolBytes, SpoolMemory int
	// Evidence, if set, receives every frame and trace and writes the
	// evidence files; Trace finishes it (Finish) unless the run failed, and
	// aborts it then.
	Evidence *Evidence
	// Sink receives every trace as the correlator emits it (reused after
	// the call). The result keeps the first Limit traces (0: all).
	Sink  func(*correlate.Trace)
	Limit int
	// Captured is called for every frame, on its point's capture goroutine
	// (live counters).
	Captured func(point int)
	// Frame, if set, gets every frame on its point's capture goroutine
	// (rf valid during the call only): agent mode streams them.
	Frame func(point int, rf *capture.RawFrame)
	// Armed, if set, is called once every point is armed, before the
	// first probe, with the probes' echo id (0 without echo probes).
	Armed func(echoID uint16)
	// Filter keeps only matching frames (Passive: the endpoints' own
	// traffic, narrowed further); nil keeps all.
	Filter *filter.Filter
	// Why watches the kernel's drops of the run's packets (eBPF on
	// skb:kfree_skb) and traces nftables rules for them, so a lost trace
	// says why; what this host cannot do becomes a warning.
	Why bool
}

// Trace arms every point of the path, probes (or waits, Passive), stops,
// drains and correlates: the whole live run. It returns the report's
// document; on an error nothing is reported (the evidence is aborted, and
// what points armed before the failure captured is dropped). An
// interrupted run (ctx done) still returns its document, with
// Live.Interrupted set.
func Trace(ctx context.Context, o TraceOptions) (report.Document, error) {
	path := o.Path
	if err := o.Evidence.plan(path); err != nil {
		return report.Document{}, err
	}
	if o.Why && o.TCP.IsValid() {
		// The drop watcher matches ICMP echoes (the probes' id and tag).
		o.Why = false
		path.Notes = append(path.Notes, "drop reasons are asked of the kernel for ICMP probes only: this run's TCP SYNs carry none")
	}
	lt := &liveTrace{o: o, path: path, keep: keeper{limit: o.Limit, hold: o.Why}}
	lt.keep.seen = lt.seeProbe
	if o.Sink != nil {
		lt.keep.sinks = append(lt.keep.sinks, o.Sink)
	}
	if o.Evidence != nil {
		lt.keep.sinks = append(lt.keep.sinks, o.Evidence.trace)
	}
	eng, err := correlate.New(liveConfig(path, o.Window), lt.keep.add)
	if err != nil {
		o.Evidence.abort()
		return report.Document{}, err
	}
	lt.eng = eng
	if err := lt.capture(ctx); err != nil {
		o.Evidence.abort() // nothing was captured: leave no empty files behind
		return report.Document{}, err
	}
	if err := discover.RefreshFDB(path); err != nil {
		path.Notes = append(path.Notes, fmt.Sprintf("bridge forwarding entries after the trace could not be read: %v", err))
	}
	result := lt.finish()
	lt.attachDrops(result)
	result.Traces = lt.keep.kept
	learnRemotes(path, result)
	result.Summary.FilteredOut = lt.filteredOut
	lt.info.Evidence = o.Evidence.paths()
	return report.Document{Result: result, Path: path, Live: &lt.info}, nil
}

// liveTrace is one run's state.
type liveTrace struct {
	o      TraceOptions
	path   *discover.Path
	eng    *correlate.Engine
	keep   keeper
	points []afpacket.Point

	stats       afpacket.Stats
	start, end  time.Time
	info        report.LiveInfo
	sendErr     error // first probe that could not be sent
	echoID      uint16
	tag         []byte          // the probes' payload tag
	seen        map[uint16]bool // probe seqs some point saw
	watch       *dropWatch
	drops       []dropRecord
	lost        []lostNote // probes sent that no point saw
	whyNotes    []string
	spoolFilled bool
	spillErr    error // the spool's file could not be written: frames stayed in memory
	readErr     error // a slab in the file could not be read back: its frames are lost
	filteredOut int
}

// capture arms every point, probes (or waits), stops and drains, feeding
// every frame to the correlator as it comes.
func (lt *liveTrace) capture(ctx context.Context) error {
	o := &lt.o
	var handles []*netns.Handle
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, p := range lt.path.Points {
		h, err := netns.Open(p.NetnsPath)
		if err != nil {
			return fmt.Errorf("point %s: %w", p.Name, err)
		}
		handles = append(handles, h)
		lt.points = append(lt.points, afpacket.Point{
			Name: p.Name, NetnsLabel: p.Netns, Netns: h, Ifname: p.Interface, IfIndex: p.IfIndex, Promisc: p.Promisc,
			Filter: pointFilter(lt.path, p, o.TCP),
		})
	}
	addrs := []netip.Addr{lt.path.Src.IP, lt.path.Dst.IP}
	if o.TCP.IsValid() {
		addrs = append(addrs, o.TCP.Addr())
	}
	filter, err := afpacket.FilterFor(addrs, o.TCP.IsValid())
	if err != nil {
		return fmt.Errorf("build capture filter: %w", err)
	}
	var prober prober
	if !o.Passive {
		if prober, err = lt.newProber(); err != nil {
			return err
		}
		defer prober.Close()
	}
	// The drop watcher gets ready (BTF, program, kallsyms, trace tables)
	// while the points arm; probes wait for both.
	var watchReady chan struct{}
	if o.Why {
		watchReady = make(chan struct{})
		go func() {
			defer close(watchReady)
			lt.watch = openDropWatch(lt.path, lt.whyMatch())
		}()
		defer func() { // error paths; the normal one closes it after the capture
			<-watchReady
			lt.closeWatch()
		}()
	}

	// Each point's goroutine only copies its frames out (and writes its
	// pcap); the correlator takes them in slabs on a goroutine of its own.
	spool, err := startSpool(lt.eng, len(lt.points), o.SpoolBytes, o.SpoolMemory, func(point int, rf *capture.RawFrame) {
		if o.Captured != nil {
			o.Captured(point)
		}
		o.Evidence.frame(point, rf)
		if o.Frame != nil {
			o.Frame(point, rf)
		}
	})
	if err != nil {
		return err
	}
	spool.feed.filter = newFrameFilter(o.Filter)
	spoolOpen := true
	defer func() {
		if spoolOpen { // error paths: stop the correlator too
			spool.close()
		}
	}()
	capCtx, stopCapture := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCapture()
	armed := make(chan struct{})
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		lt.stats, runErr = afpacket.Run(capCtx, lt.points, afpacket.Config{
			Filter: filter, RingBytes: lt.ringBytes(),
			// Each point captures from when its socket was armed,
			// whatever it sees; the end is set when the capture stops.
			Opened: spool.arm,
			Armed: func(time.Duration) {
				lt.start = time.Now()
				close(armed)
			},
		}, spool.sinks)
	}()
	select {
	case <-armed:
	case <-done:
		select {
		case <-armed: // armed, then every point failed at once: report what there is
		default:
			if runErr == nil {
				runErr = errors.New("capture ended before every point was armed")
			}
			spool.discard() // what the points armed first captured
			return runErr
		}
	}
	if watchReady != nil {
		<-watchReady
	}
	if o.Armed != nil {
		o.Armed(lt.echoID)
	}
	interrupted := false
	lt.info.Passive = o.Passive
	if o.Passive {
		select {
		case <-ctx.Done():
			interrupted = true
		case <-time.After(o.Duration):
		}
	} else {
		lt.info.Probes, lt.info.Size, lt.info.EchoID = o.Count, o.Size, lt.echoID
		interrupted = lt.probe(ctx, prober)
	}
	lt.end = time.Now()
	stopCapture()
	<-done
	if !lt.stats.Stopped.IsZero() {
		lt.end = lt.stats.Stopped // the points kept no frame stamped later
	}
	lt.closeWatch()
	spool.close()
	spoolOpen = false
	lt.spoolFilled, lt.filteredOut = spool.filled(), spool.feed.filter.filteredOut()
	lt.spillErr, lt.readErr = spool.spill.err, spool.readErr
	lt.info.SpoolFile = spool.spill.bytes
	if runErr != nil {
		return runErr
	}
	lt.info.Interrupted = interrupted
	lt.info.Started, lt.info.Ended = lt.start, lt.end
	return nil
}

func (lt *liveTrace) ringBytes() int {
	switch {
	case lt.o.RingBytes > 0:
		return lt.o.RingBytes
	case lt.o.Passive:
		return PassiveRingBytes
	}
	return afpacket.DefaultRingBytes
}

// prober is what the run needs of probe.Prober (ICMP echo) and
// probe.TCPProber (SYN).
type prober interface {
	Send(seq uint16) (time.Time, error)
	Recv(deadline time.Time) (probe.Reply, error)
	Close() error
}

// newProber opens the raw socket in the source's namespace: ICMP with an
// echo id and a payload tag unique to the run, padded with zeros so probes
// carry Size bytes (ping's 56 by default); or TCP SYNs with a sequence
// base unique to the run.
func (lt *liveTrace) newProber() (prober, error) {
	size := lt.o.Size
	if size == 0 {
		size = DefaultProbeSize
	}
	if size < MinProbeSize || size > MaxProbeSize {
		return nil, fmt.Errorf("probe size %d: want %d to %d bytes", size, MinProbeSize, MaxProbeSize)
	}
	srcNS, err := netns.Open(lt.path.Src.NetnsPath)
	if err != nil {
		return nil, fmt.Errorf("source namespace: %w", err)
	}
	defer srcNS.Close()
	n := len(probeTagText)
	tag := make([]byte, size-10)
	copy(tag, probeTagText)
	rand.Read(tag[n : n+8])
	if lt.o.TCP.IsValid() {
		return probe.NewTCP(srcNS, lt.path.Src.IP, lt.o.TCP, binary.BigEndian.Uint32(tag[n:n+4]))
	}
	lt.echoID, lt.tag = binary.BigEndian.Uint16(tag[n:n+2]), tag
	return probe.New(srcNS, lt.path.Dst.IP, lt.echoID, tag)
}

// probe sends the echo requests and waits for the replies; true when
// interrupted. Replies are counted from the prober's socket; the report's
// traces come from the captures.
func (lt *liveTrace) probe(ctx context.Context, p prober) bool {
	replies := map[uint16]bool{}
	info := &lt.info
	// wait reads replies until `until`, or (last) until every probe sent is
	// answered; true when interrupted.
	wait := func(until time.Time, last bool) bool {
		for time.Now().Before(until) && !(last && len(replies) >= info.Sent) {
			if ctx.Err() != nil {
				return true
			}
			step := min(time.Until(until), 50*time.Millisecond)
			if r, err := p.Recv(time.Now().Add(step)); err == nil {
				replies[r.Seq] = true
			}
		}
		return ctx.Err() != nil
	}
	defer func() { info.Replies = len(replies) }()
	sent := map[uint16]time.Time{}
	for i := 0; i < lt.o.Count; i++ {
		if at, err := p.Send(uint16(i + 1)); err != nil {
			if lt.sendErr == nil {
				lt.sendErr = err
			}
		} else {
			info.Sent++
			sent[uint16(i+1)] = at
		}
		last := i == lt.o.Count-1
		until := time.Now().Add(lt.o.Interval)
		if last {
			until = time.Now().Add(lt.o.Timeout)
		}
		if wait(until, last) {
			return true
		}
	}
	if !lt.watch.active() {
		return false
	}
	// The kernel may drop an unanswered probe late: one queued behind a
	// neighbour resolution dies when that fails. Wait for it, unless every
	// unanswered probe's drop is in already.
	var first time.Time
	for seq, at := range sent {
		if !replies[seq] && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	for deadline := first.Add(neighGrace); !first.IsZero() && time.Now().Before(deadline); {
		dropped := lt.watch.droppedSeqs(lt.echoID)
		pending := false
		for seq := range sent {
			pending = pending || !replies[seq] && !dropped[seq]
		}
		if !pending {
			break
		}
		step := time.Now().Add(100 * time.Millisecond)
		if step.After(deadline) {
			step = deadline
		}
		if wait(step, true) {
			return true
		}
	}
	return false
}

// finish closes the correlation: each point's capture window and kernel
// drops, what went wrong on the way, then the remaining traces. The
// evidence gets the same counters.
func (lt *liveTrace) finish() *correlate.Result {
	eng := lt.eng
	for i := range lt.points {
		end := lt.end
		if i < len(lt.stats.Points) {
			ps := &lt.stats.Points[i]
			eng.SetDrops(i, ps.Drops)
			// A point that failed (or whose ring could not be drained)
			// captured only until then: later frames are not losses.
			if ps.Err != nil && !ps.Until.IsZero() && ps.Until.Before(end) {
				end = ps.Until
			}
		}
		from := lt.start
		if i < len(lt.stats.Points) && !lt.stats.Points[i].From.IsZero() {
			from = lt.stats.Points[i].From
		}
		eng.SetCoverage(i, from.UnixNano(), end.UnixNano())
	}
	var drops uint64
	for _, ps := range lt.stats.Points {
		if ps.Err != nil {
			eng.Warn(fmt.Sprintf("%s: capture stopped early: %v", ps.Name, ps.Err))
		}
		drops += ps.Drops
	}
	if drops > 0 && lt.spoolFilled {
		eng.Warn(fmt.Sprintf("the spool (--spool-size %d MiB) filled: the correlator fell behind the capture and the rings had to "+
			"absorb the rest; a larger spool keeps more of a flood on a node short of CPU", lt.spoolBytes()>>20))
	}
	if lt.spillErr != nil {
		eng.Warn(fmt.Sprintf("the spool kept its frames in memory past --spool-memory: %v", lt.spillErr))
	}
	if lt.readErr != nil {
		eng.Warn(fmt.Sprintf("frames the spool had put in its file were lost: %v", lt.readErr))
	}
	for _, n := range lt.path.Notes {
		eng.Warn(n)
	}
	if lt.sendErr != nil {
		eng.Warn(fmt.Sprintf("%d of %d probes could not be sent: %v", lt.info.Probes-lt.info.Sent, lt.info.Probes, lt.sendErr))
	}
	lt.o.Evidence.setCounters(lt.stats.Points, lt.start.UnixNano(), lt.end.UnixNano())
	eng.Flush() // every trace out: which probes no point saw is known
	lt.lostProbes()
	return eng.Finish()
}

func (lt *liveTrace) spoolBytes() int {
	if lt.o.SpoolBytes > 0 {
		return lt.o.SpoolBytes
	}
	return DefaultSpoolBytes
}
