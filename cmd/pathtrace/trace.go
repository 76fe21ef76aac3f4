package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/analysis"
	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/netns"
	"github.com/pathtrace/pathtrace/report"
)

// traceOptions are the live tracer's flags.
type traceOptions struct {
	outputOptions
	Src, Dst   string
	Count      int
	Interval   time.Duration
	Timeout    time.Duration
	Passive    bool
	Duration   time.Duration
	OutDir     string
	Force      bool
	RingBytes  int
	SpoolBytes int

	Resolver discover.Resolver
	Out      io.Writer
	ErrOut   io.Writer
}

func (o *traceOptions) addFlags(cmd *cobra.Command) {
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source endpoint: netns name, namespace path, PID or IP address")
	f.StringVar(&o.Dst, "dst", "", "destination endpoint: netns name, namespace path, PID or IP address")
	f.IntVarP(&o.Count, "count", "c", 3, "echo probes to send")
	f.DurationVarP(&o.Interval, "interval", "i", 200*time.Millisecond, "time between probes")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "how long to wait for the last reply")
	f.BoolVar(&o.Passive, "passive", false, "send nothing: correlate the endpoints' own traffic for --duration or until Ctrl-C")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "capture time in --passive mode")
	f.StringVarP(&o.OutDir, "out", "o", "", "write evidence to DIR: one pcap per point, path.pcapng, report.json, report.md")
	f.BoolVar(&o.Force, "force", false, "overwrite existing evidence files")
	f.IntVar(&o.RingBytes, "ring-size", 0, "capture ring per point, bytes (default 4 MiB with probes, 32 MiB with --passive)")
	f.IntVar(&o.SpoolBytes, "spool-size", analysis.DefaultSpoolBytes, "frames captured but not yet correlated, bytes: what a flood may get ahead of the correlator before the rings fill")
}

func (o *traceOptions) validate() error {
	if err := o.outputOptions.validate(); err != nil {
		return err
	}
	if o.Src == "" || o.Dst == "" {
		return errors.New("give both --src and --dst (or use 'pathtrace analyze FILE...' for saved captures)")
	}
	if !o.Passive && (o.Count < 1 || o.Count > 65535) {
		return fmt.Errorf("--count %d: want 1 to 65535", o.Count)
	}
	if o.Interval < 0 || o.Timeout < 0 {
		return errors.New("--interval and --timeout must not be negative")
	}
	if o.Passive && o.Duration <= 0 {
		return fmt.Errorf("--duration %v: want a positive duration", o.Duration)
	}
	if o.RingBytes == 0 {
		// Probes are a few frames; the endpoints' own traffic may be a
		// flood (32 MiB rings keep a `ping -f` at five points without drops).
		o.RingBytes = capture.DefaultRingBytes
		if o.Passive {
			o.RingBytes = passiveRingBytes
		}
	}
	if o.RingBytes < 1<<20 {
		return fmt.Errorf("--ring-size %d: want at least 1 MiB", o.RingBytes)
	}
	if o.SpoolBytes == 0 {
		o.SpoolBytes = analysis.DefaultSpoolBytes
	}
	if o.SpoolBytes < 4<<20 {
		return fmt.Errorf("--spool-size %d: want at least 4 MiB", o.SpoolBytes)
	}
	return nil
}

// run traces once: resolve, discover, arm every point, probe, drain,
// correlate, report. It returns the exit status as an exitError.
func (o *traceOptions) run(ctx context.Context) error {
	if err := o.validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	if err := checkPrivileges(); err != nil {
		return &exitError{exitUsage, err}
	}
	var ev *evidence
	if o.OutDir != "" {
		ev = newEvidence(o.OutDir, o.Force)
	}
	res := o.Resolver
	if res == nil {
		res = discover.NewResolver()
	}
	src, err := res.Resolve(o.Src)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("--src %s: %w", o.Src, err)}
	}
	dst, err := res.Resolve(o.Dst)
	if err != nil {
		ip, perr := netip.ParseAddr(o.Dst)
		if !errors.Is(err, discover.ErrNoMatch) || perr != nil {
			return &exitError{exitUsage, fmt.Errorf("--dst %s: %w", o.Dst, err)}
		}
		dst = discover.Remote(ip) // off the node: trace to the egress interface
	}
	path, err := discover.Discover(ctx, src, dst)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("discover path %s → %s: %w", src.Label, dst.Label, err)}
	}
	if ev != nil {
		if err := ev.plan(path); err != nil {
			return &exitError{exitUsage, err}
		}
	}
	// Frames are correlated while they are captured. Every trace goes to
	// the JSON outputs as it is emitted; the table keeps the first --limit.
	var kept []correlate.Trace
	var stream *report.JSONStream
	if o.Format == "json" {
		stream = report.NewJSONStream(o.Out)
	}
	eng, err := correlate.New(liveConfig(path, o.Window), func(t *correlate.Trace) {
		if stream != nil {
			stream.Trace(t)
		}
		if ev != nil {
			ev.trace(t)
		}
		if o.Limit == 0 || len(kept) < o.Limit {
			kept = append(kept, t.Clone())
		}
	})
	if err != nil {
		if ev != nil {
			ev.abort()
		}
		return &exitError{exitUsage, err}
	}
	lr, err := o.capture(ctx, path, ev, eng)
	if err != nil {
		if ev != nil {
			ev.abort() // nothing was captured: leave no empty files behind
		}
		return &exitError{exitUsage, err}
	}
	if err := discover.RefreshFDB(path); err != nil {
		path.Notes = append(path.Notes, fmt.Sprintf("bridge forwarding entries after the trace could not be read: %v", err))
	}
	result := finishLive(eng, path, lr)
	result.Traces = kept
	doc := report.Document{Result: result, Path: path, Live: &lr.info}
	if ev != nil {
		lr.info.Evidence = ev.paths()
	}
	// The report goes out before the evidence is written, so a full disk
	// cannot hide what was captured.
	if stream != nil {
		err = stream.Finish(doc)
	} else {
		err = o.render(o.Out, doc)
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if ev != nil {
		if err := ev.finish(doc, lr.stats.Points, lr.start.UnixNano(), lr.end.UnixNano()); err != nil {
			return &exitError{exitUsage, err}
		}
	}
	switch {
	case lr.info.Interrupted:
		return &exitError{code: exitInterrupted}
	case !result.Summary.Clean:
		return &exitError{code: exitFindings}
	}
	return nil
}

// liveRun is what a capture produced.
type liveRun struct {
	points      []capture.LivePoint
	stats       capture.LiveStats
	start       time.Time
	end         time.Time
	info        report.LiveInfo
	sendErr     error // first probe that could not be sent
	spoolFilled bool
	spoolBytes  int
}

// capture arms every point, probes (or waits, passive), stops and drains,
// feeding every frame to eng as it comes.
func (o *traceOptions) capture(ctx context.Context, path *discover.Path, ev *evidence, eng *correlate.Engine) (*liveRun, error) {
	lr := &liveRun{}
	var handles []*netns.Handle
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, p := range path.Points {
		h, err := netns.Open(p.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("point %s: %w", p.Name, err)
		}
		handles = append(handles, h)
		lr.points = append(lr.points, capture.LivePoint{
			Name: p.Name, NetnsLabel: p.Netns, Netns: h, Ifname: p.Interface, IfIndex: p.IfIndex, Promisc: p.Promisc,
		})
	}
	filter, err := capture.Filter(path.Src.IP, path.Dst.IP)
	if err != nil {
		return nil, fmt.Errorf("build capture filter: %w", err)
	}

	var prober *capture.Prober
	id := uint16(0)
	if !o.Passive {
		srcNS, err := netns.Open(path.Src.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("source namespace: %w", err)
		}
		defer srcNS.Close()
		// A tag unique to the run, padded so probes carry ping's 56 bytes.
		tag := make([]byte, probeTagLen)
		copy(tag, "pathtrace")
		rand.Read(tag[9:17])
		id = binary.BigEndian.Uint16(tag[9:11])
		prober, err = capture.NewProber(srcNS, path.Dst.IP, id, tag)
		if err != nil {
			return nil, err
		}
		defer prober.Close()
	}

	var names []string
	for _, p := range lr.points {
		names = append(names, p.Name)
	}
	counters := newPointCounters(o.ErrOut, o.Quiet, names)
	// Each point's goroutine only copies its frames out (and writes its
	// pcap); the correlator takes them in slabs on a goroutine of its own.
	live, err := analysis.StartLive(eng, len(lr.points), analysis.LiveOptions{
		SpoolBytes: o.SpoolBytes,
		Captured: func(point int, rf *capture.RawFrame) {
			counters.frame(point)
			if ev != nil {
				ev.frame(point, rf)
			}
		},
	})
	if err != nil {
		counters.done()
		return nil, err
	}
	liveOpen := true
	defer func() {
		if liveOpen { // error paths: stop the correlator too
			live.Close()
		}
	}()
	capCtx, stopCapture := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCapture()
	armed := make(chan struct{})
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		lr.stats, runErr = capture.RunLive(capCtx, lr.points, capture.LiveConfig{
			Filter: filter, RingBytes: o.RingBytes,
			Armed: func(time.Duration) {
				lr.start = time.Now()
				// Capturing from now on, whatever a point sees; the end is
				// set when the capture stops.
				for i := range lr.points {
					eng.SetCoverage(i, lr.start.UnixNano(), 1<<63-1)
				}
				close(armed)
			},
		}, live.Sinks())
	}()
	select {
	case <-armed:
	case <-done:
		select {
		case <-armed: // armed, then every point failed at once: report what there is
		default:
			counters.done()
			if runErr == nil {
				runErr = errors.New("capture ended before every point was armed")
			}
			return nil, runErr
		}
	}

	lr.info.Probes = o.Count
	interrupted := false
	if o.Passive {
		lr.info.Probes = 0
		select {
		case <-ctx.Done():
			interrupted = true
		case <-time.After(o.Duration):
		}
	} else {
		interrupted = o.probe(ctx, prober, lr)
	}
	lr.end = time.Now()
	stopCapture()
	<-done
	if !lr.stats.Stopped.IsZero() {
		lr.end = lr.stats.Stopped // the points kept no frame stamped later
	}
	counters.done()
	live.Close()
	liveOpen = false
	lr.spoolFilled, lr.spoolBytes = live.SpoolFilled(), o.SpoolBytes
	if runErr != nil {
		return nil, runErr
	}
	lr.info.Interrupted = interrupted
	lr.info.Started, lr.info.Ended = lr.start, lr.end
	return lr, nil
}

// passiveRingBytes is the ring per point for --passive.
const passiveRingBytes = 32 << 20

// probeTagLen + the prober's seq and stamp (10 bytes) = ping's 56 bytes.
const probeTagLen = 46

// probe sends the echo requests and waits for the replies; true when
// interrupted. Replies are counted from the prober's socket; the report's
// traces come from the captures.
func (o *traceOptions) probe(ctx context.Context, p *capture.Prober, lr *liveRun) bool {
	replies := map[uint16]bool{}
	// wait reads replies until `until`, or (last) until every probe sent is
	// answered; true when interrupted.
	wait := func(until time.Time, last bool) bool {
		for time.Now().Before(until) && !(last && len(replies) >= lr.info.Sent) {
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
	defer func() { lr.info.Replies = len(replies) }()
	for i := 0; i < o.Count; i++ {
		if _, err := p.Send(uint16(i + 1)); err != nil {
			if lr.sendErr == nil {
				lr.sendErr = err
			}
		} else {
			lr.info.Sent++
		}
		last := i == o.Count-1
		until := time.Now().Add(o.Interval)
		if last {
			until = time.Now().Add(o.Timeout)
		}
		if wait(until, last) {
			return true
		}
	}
	return false
}

// liveConfig is the correlator's view of the discovered path: the points,
// and who owns which MAC and IP, so the report names owners and directions
// come from the topology.
func liveConfig(path *discover.Path, window time.Duration) correlate.Config {
	cfg := correlate.Config{Window: int64(window), MACOwners: map[correlate.MAC]correlate.Owner{}, IPOwners: map[netip.Addr]correlate.Owner{}}
	for i, p := range path.Points {
		cfg.Points = append(cfg.Points, correlate.PointSpec{
			Name: p.Name, Interface: p.Interface, IfIndex: p.IfIndex, MTU: p.MTU,
			Source: "netns " + p.Netns, Snaplen: capture.FilterSnaplen,
		})
		if mac, err := parseMAC(p.MAC); err == nil {
			label := path.Owners[p.MAC]
			if label == "" {
				label = p.Name
			}
			cfg.MACOwners[mac] = correlate.Owner{Point: i, Label: label}
		}
		for _, a := range p.Addrs {
			if pf, err := netip.ParsePrefix(a); err == nil {
				cfg.IPOwners[pf.Addr()] = correlate.Owner{Point: i, Label: p.Name}
			} else if ip, err := netip.ParseAddr(a); err == nil {
				cfg.IPOwners[ip] = correlate.Owner{Point: i, Label: p.Name}
			}
		}
	}
	if n := len(path.Points); n > 0 {
		if path.Src.IP.IsValid() {
			cfg.IPOwners[path.Src.IP] = correlate.Owner{Point: 0, Label: path.Src.Label}
		}
		if path.Dst.IP.IsValid() && path.Points[n-1].Role == "endpoint" {
			cfg.IPOwners[path.Dst.IP] = correlate.Owner{Point: n - 1, Label: path.Dst.Label}
		}
	}
	return cfg
}

// finishLive closes the correlation: each point's capture window and
// kernel drops, what went wrong on the way, then the remaining traces.
func finishLive(eng *correlate.Engine, path *discover.Path, lr *liveRun) *correlate.Result {
	for i := range lr.points {
		end := lr.end
		if i < len(lr.stats.Points) {
			ps := &lr.stats.Points[i]
			eng.SetDrops(i, ps.Drops)
			// A point that failed (or whose ring could not be drained)
			// captured only until then: later frames are not losses.
			if ps.Err != nil && !ps.Until.IsZero() && ps.Until.Before(end) {
				end = ps.Until
			}
		}
		eng.SetCoverage(i, lr.start.UnixNano(), end.UnixNano())
	}
	var drops uint64
	for _, ps := range lr.stats.Points {
		if ps.Err != nil {
			eng.Warn(fmt.Sprintf("%s: capture stopped early: %v", ps.Name, ps.Err))
		}
		drops += ps.Drops
	}
	if drops > 0 && lr.spoolFilled {
		eng.Warn(fmt.Sprintf("the spool (--spool-size %d MiB) filled: the correlator fell behind the capture and the rings had to "+
			"absorb the rest; a larger spool keeps more of a flood on a node short of CPU", lr.spoolBytes>>20))
	}
	for _, n := range path.Notes {
		eng.Warn(n)
	}
	if lr.sendErr != nil {
		eng.Warn(fmt.Sprintf("%d of %d probes could not be sent: %v", lr.info.Probes-lr.info.Sent, lr.info.Probes, lr.sendErr))
	}
	return eng.Finish()
}

func parseMAC(s string) (correlate.MAC, error) {
	var m correlate.MAC
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, fmt.Errorf("bad MAC %q", s)
	}
	for i, p := range parts {
		var v byte
		if _, err := fmt.Sscanf(p, "%02x", &v); err != nil {
			return m, fmt.Errorf("bad MAC %q", s)
		}
		m[i] = v
	}
	return m, nil
}
