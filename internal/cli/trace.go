package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
)

// traceOptions are the live tracer's flags.
type traceOptions struct {
	IO *iostreams.IOStreams
	outputOptions
	Src, Dst   string
	Count      int
	Interval   time.Duration
	Timeout    time.Duration
	Passive    bool
	Duration   time.Duration
	OutDir     string
	Force      bool
	SharedOut  bool
	RingBytes  int
	SpoolBytes int
	Filter     string

	Resolver discover.Resolver
}

// addProbeFlags are the flags of a run that sends probes: the tracer's and
// the demo's.
func (o *traceOptions) addProbeFlags(cmd *cobra.Command) {
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.IntVarP(&o.Count, "count", "c", 3, "echo probes to send")
	f.DurationVarP(&o.Interval, "interval", "i", 200*time.Millisecond, "time between probes")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "how long to wait for the last reply")
	f.StringVarP(&o.OutDir, "out", "o", "", "write evidence to DIR: one pcap per point, path.pcapng, report.json, report.md, report.html")
	f.BoolVar(&o.Force, "force", false, "overwrite existing evidence files")
	f.BoolVar(&o.SharedOut, "allow-shared-out", false,
		"write evidence into a folder others can write or another user owns (refused by default: they could swap the files)")
}

func (o *traceOptions) addFlags(cmd *cobra.Command) {
	o.addProbeFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source endpoint: netns name, namespace path, PID or IP address")
	f.StringVar(&o.Dst, "dst", "", "destination endpoint: netns name, namespace path, PID or IP address")
	f.BoolVar(&o.Passive, "passive", false, "send nothing: correlate the endpoints' own traffic for --duration or until Ctrl-C")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "capture time in --passive mode")
	f.StringVar(&o.Filter, "filter", "", "with --passive: keep only frames matching this tcpdump expression (inner frames of tunnels too), e.g. 'icmp and host 10.244.1.3'")
	f.IntVar(&o.RingBytes, "ring-size", 0, "capture ring per point, bytes (default 4 MiB with probes, 16 MiB with --passive)")
	f.IntVar(&o.SpoolBytes, "spool-size", pipeline.DefaultSpoolBytes, "frames captured but not yet correlated, bytes: what a flood may get ahead of the correlator before the rings fill")
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
	if o.RingBytes != 0 && o.RingBytes < 1<<20 {
		return fmt.Errorf("--ring-size %d: want at least 1 MiB", o.RingBytes)
	}
	if o.Filter != "" && !o.Passive {
		return errors.New("--filter goes with --passive: pathtrace's own probes are filtered already")
	}
	if o.SpoolBytes != 0 && o.SpoolBytes < 4<<20 {
		return fmt.Errorf("--spool-size %d: want at least 4 MiB", o.SpoolBytes)
	}
	return nil
}

// run traces once: resolve, discover, trace (arm, probe, drain, correlate),
// report, then write the evidence. It returns the exit status as an
// exitError.
func (o *traceOptions) run(ctx context.Context) error {
	if err := o.validate(); err != nil {
		return usageError(err)
	}
	if err := checkPrivileges(); err != nil {
		return usageError(err)
	}
	filt, err := filter.Compile(o.Filter)
	if err != nil {
		return usageError(err)
	}
	ev, err := o.evidence()
	if err != nil {
		return usageError(err)
	}
	path, err := o.discover(ctx)
	if err != nil {
		return usageError(err)
	}
	out := o.start(o.IO.Out)
	names := make([]string, len(path.Points))
	for i, p := range path.Points {
		names[i] = p.Name
	}
	counters := newPointCounters(o.IO, o.Quiet, names)
	doc, err := pipeline.Trace(ctx, pipeline.TraceOptions{
		Path: path, Count: o.Count, Interval: o.Interval, Timeout: o.Timeout,
		Passive: o.Passive, Duration: o.Duration, Window: o.Window,
		RingBytes: o.RingBytes, SpoolBytes: o.SpoolBytes,
		Evidence: ev, Sink: out.sink(), Limit: o.Limit, Captured: counters.frame, Filter: filt,
	})
	counters.done()
	if err != nil {
		return usageError(err)
	}
	// The report goes out before the evidence is written, so a full disk
	// cannot hide what was captured.
	if err := out.finish(doc); err != nil {
		return outputError(err)
	}
	if err := ev.Finish(doc); err != nil {
		return outputError(err)
	}
	return findings(doc.Live.Interrupted, doc.Result.Summary.Clean)
}

// evidence checks the --out folder (nil without --out); nothing is created
// before the path is known.
func (o *traceOptions) evidence() (*pipeline.Evidence, error) {
	if o.OutDir == "" {
		return nil, nil
	}
	return pipeline.NewEvidence(o.OutDir, o.Force, o.SharedOut)
}

// discover resolves both endpoints and finds the path between them. A
// destination IP that no namespace on the node holds is traced to the
// node's egress.
func (o *traceOptions) discover(ctx context.Context) (*discover.Path, error) {
	res := o.Resolver
	if res == nil {
		res = discover.NewResolver()
	}
	src, err := res.Resolve(o.Src)
	if err != nil {
		return nil, fmt.Errorf("--src %s: %w", o.Src, err)
	}
	dst, err := res.Resolve(o.Dst)
	if err != nil {
		ip, perr := netip.ParseAddr(o.Dst)
		if !errors.Is(err, discover.ErrNoMatch) || perr != nil {
			return nil, fmt.Errorf("--dst %s: %w", o.Dst, err)
		}
		dst = discover.Remote(ip)
	}
	path, err := discover.Discover(ctx, src, dst)
	if err != nil {
		return nil, fmt.Errorf("discover path %s → %s: %w", src.Label, dst.Label, err)
	}
	return path, nil
}
