package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
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
	// probeTagLen + the prober's seq and stamp (10 bytes) = ping's 56 bytes.
	probeTagLen = 46
)

// TraceOptions describe one live trace of a discovered path.
type TraceOptions struct {
	Path     *discover.Path
	Count    int           // echo probes to send (ignored with Passive)
	Interval time.Duration // between probes
	Timeout  time.Duration // wait for the last reply
	Passive  bool          // send nothing: correlate the endpoints' own traffic
	Duration time.Duration // capture time with Passive
	Window   time.Duration // match window
	// RingBytes per point (<= 0: afpacket.DefaultRingBytes, or
	// PassiveRingBytes with Passive); SpoolBytes bounds the frames captured
	// but not yet correlated (<= 0: DefaultSpoolBytes).
	RingBytes, SpoolBytes int
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
	// Filter keeps only matching frames (Passive: the endpoints' own
	// traffic, narrowed further); nil keeps all.
	Filter *filter.Filter
}

// Trace arms every point of the path, probes (or waits, Passive), stops,
// drains and correlates: the whole live run. It returns the report's
// document; on an error nothing was captured (and the evidence is
// aborted). An interrupted run (ctx done) still returns its document,
// with Live.Interrupted set.
func Trace(ctx context.Context, o TraceOptions) (report.Document, error) {
	path := o.Path
	if err := o.Evidence.plan(path); err != nil {
		return report.Document{}, err
	}
	lt := &liveTrace{o: o, path: path, keep: keeper{limit: o.Limit}}
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
	result.Traces = lt.keep.kept
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
	spoolFilled bool
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
		})
	}
	filter, err := afpacket.Filter(lt.path.Src.IP, lt.path.Dst.IP)
	if err != nil {
		return fmt.Errorf("build capture filter: %w", err)
	}
	var prober *probe.Prober
	if !o.Passive {
		if prober, err = lt.newProber(); err != nil {
			return err
		}
		defer prober.Close()
	}

	// Each point's goroutine only copies its frames out (and writes its
	// pcap); the correlator takes them in slabs on a goroutine of its own.
	spool, err := startSpool(lt.eng, len(lt.points), o.SpoolBytes, func(point int, rf *capture.RawFrame) {
		if o.Captured != nil {
			o.Captured(point)
		}
		o.Evidence.frame(point, rf)
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
			Armed: func(time.Duration) {
				lt.start = time.Now()
				// Capturing from now on, whatever a point sees; the end is
				// set when the capture stops.
				for i := range lt.points {
					lt.eng.SetCoverage(i, lt.start.UnixNano(), 1<<63-1)
				}
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
			return runErr
		}
	}
	interrupted := false
	if o.Passive {
		select {
		case <-ctx.Done():
			interrupted = true
		case <-time.After(o.Duration):
		}
	} else {
		lt.info.Probes = o.Count
		interrupted = lt.probe(ctx, prober)
	}
	lt.end = time.Now()
	stopCapture()
	<-done
	if !lt.stats.Stopped.IsZero() {
		lt.end = lt.stats.Stopped // the points kept no frame stamped later
	}
	spool.close()
	spoolOpen = false
	lt.spoolFilled, lt.filteredOut = spool.filled(), spool.feed.filter.filteredOut()
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

// newProber opens the raw ICMP socket in the source's namespace, with an
// echo id and a payload tag unique to the run, padded so probes carry
// ping's 56 bytes.
func (lt *liveTrace) newProber() (*probe.Prober, error) {
	srcNS, err := netns.Open(lt.path.Src.NetnsPath)
	if err != nil {
		return nil, fmt.Errorf("source namespace: %w", err)
	}
	defer srcNS.Close()
	tag := make([]byte, probeTagLen)
	copy(tag, "pathtrace")
	rand.Read(tag[9:17])
	id := binary.BigEndian.Uint16(tag[9:11])
	return probe.New(srcNS, lt.path.Dst.IP, id, tag)
}

// probe sends the echo requests and waits for the replies; true when
// interrupted. Replies are counted from the prober's socket; the report's
// traces come from the captures.
func (lt *liveTrace) probe(ctx context.Context, p *probe.Prober) bool {
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
	for i := 0; i < lt.o.Count; i++ {
		if _, err := p.Send(uint16(i + 1)); err != nil {
			if lt.sendErr == nil {
				lt.sendErr = err
			}
		} else {
			info.Sent++
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
		eng.SetCoverage(i, lt.start.UnixNano(), end.UnixNano())
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
	for _, n := range lt.path.Notes {
		eng.Warn(n)
	}
	if lt.sendErr != nil {
		eng.Warn(fmt.Sprintf("%d of %d probes could not be sent: %v", lt.info.Probes-lt.info.Sent, lt.info.Probes, lt.sendErr))
	}
	lt.o.Evidence.setCounters(lt.stats.Points, lt.start.UnixNano(), lt.end.UnixNano())
	return eng.Finish()
}

func (lt *liveTrace) spoolBytes() int {
	if lt.o.SpoolBytes > 0 {
		return lt.o.SpoolBytes
	}
	return DefaultSpoolBytes
}
