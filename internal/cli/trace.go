package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

// traceOptions are the live tracer's flags.
type traceOptions struct {
	IO *iostreams.IOStreams
	outputOptions
	Src, Dst   string
	Count      int
	Interval   time.Duration
	Timeout    time.Duration
	Size       int
	Passive    bool
	Duration   time.Duration
	OutDir     string
	Force      bool
	SharedOut  bool
	RingBytes  byteSize
	SpoolBytes byteSize
	SpoolMem   byteSize
	Filter     string
	Why, NoWhy bool
	// probeFlags are the probe flags given on the command line, which a
	// --passive run (no probes) refuses rather than ignores.
	probeFlags []string

	TCPPort uint16
	kube    kubeOptions
	cl      clusterOptions
	// changed reports whether the command line gave a flag.
	changed func(name string) bool

	// Resolver, if set, replaces the Kubernetes-aware resolver (tests, the
	// demo's lab).
	Resolver discover.Resolver
}

// addProbeFlags are the flags of a run that sends probes: the tracer's and
// the demo's.
func (o *traceOptions) addProbeFlags(cmd *cobra.Command) {
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.IntVarP(&o.Count, "count", "c", 3, "echo probes to send")
	f.DurationVarP(&o.Interval, "interval", "i", 200*time.Millisecond, "time between probes")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "how long to wait for the last reply (a probe the kernel may still drop, e.g. behind an ARP nobody answers, is waited for up to 3.5s after it was sent)")
	f.IntVar(&o.Size, "size", pipeline.DefaultProbeSize, fmt.Sprintf("echo payload bytes, like ping -s (%d to %d; IP packet: 28 more)", pipeline.MinProbeSize, pipeline.MaxProbeSize))
	f.StringVarP(&o.OutDir, "out", "o", "", "write evidence to DIR: one pcap per point, path.pcapng, report.json, report.md, report.html")
	f.BoolVar(&o.Force, "force", false, "overwrite existing evidence files")
	f.BoolVar(&o.SharedOut, "allow-shared-out", false,
		"write evidence into a folder others can write or another user owns (refused by default: they could swap the files)")
	f.BoolVar(&o.NoWhy, "no-why", false,
		"do not ask the kernel why frames were dropped (no eBPF program, no nftables trace table for the run)")
}

func (o *traceOptions) addFlags(cmd *cobra.Command) {
	o.addProbeFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source endpoint: pod (NAME, NAMESPACE/NAME, pod/NAME), deploy/NAME, node/NAME or host, netns name, namespace path, PID or IP address")
	f.StringVar(&o.Dst, "dst", "", "destination endpoint: as --src, or svc/NAME[:PORT] (a ready endpoint of the Service, probed with TCP SYNs to its ClusterIP)")
	f.Uint16Var(&o.TCPPort, "tcp-port", 0, "probe with TCP SYNs to this port of the destination instead of ICMP echo requests")
	f.BoolVar(&o.Passive, "passive", false, "send nothing: correlate the endpoints' own traffic for --duration or until Ctrl-C")
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "capture time in --passive mode")
	f.BoolVar(&o.Why, "why", false,
		"with --passive: say why the endpoints' echoes were dropped (the kernel's drop reason, the nftables rule); on by default with probes")
	f.StringVar(&o.Filter, "filter", "", "with --passive: keep only frames matching this tcpdump expression (inner frames of tunnels too), e.g. 'icmp and host 10.244.1.3'")
	o.kube.addFlags(cmd)
	o.cl.addFlags(cmd)
	o.changed = cmd.Flags().Changed
	f.Var(&o.RingBytes, "ring-size", "capture ring per point: bytes or 4MiB, 16M, 1G... (default 4MiB with probes, 16MiB with --passive)")
	o.SpoolBytes = pipeline.DefaultSpoolBytes
	f.Var(&o.SpoolBytes, "spool-size", "frames captured but not yet correlated: bytes or 256MiB, 1G...; what a flood may get ahead of the correlator before the rings fill")
	o.SpoolMem = pipeline.DefaultSpoolMemory
	f.Var(&o.SpoolMem, "spool-memory", spoolMemoryUsage)
}

// probeFlagNames are the flags that only shape probes.
var probeFlagNames = []string{"count", "interval", "timeout", "size"}

// noteProbeFlags records which probe flags the command line gave.
func (o *traceOptions) noteProbeFlags(cmd *cobra.Command) {
	o.probeFlags = nil
	for _, n := range probeFlagNames {
		if f := cmd.Flags().Lookup(n); f != nil && f.Changed {
			o.probeFlags = append(o.probeFlags, "--"+n)
		}
	}
}

func (o *traceOptions) validate() error {
	if err := o.outputOptions.validate(); err != nil {
		return err
	}
	if o.Src == "" || o.Dst == "" {
		return errors.New("give both --src and --dst (or use 'pathtrace analyze FILE...' for saved captures)")
	}
	if o.Passive && len(o.probeFlags) > 0 {
		return fmt.Errorf("%s shape probes, and --passive sends none: drop one or the other", strings.Join(o.probeFlags, ", "))
	}
	if !o.Passive && (o.Count < 1 || o.Count > 65535) {
		return fmt.Errorf("--count %d: want 1 to 65535", o.Count)
	}
	if !o.Passive && (o.Size < pipeline.MinProbeSize || o.Size > pipeline.MaxProbeSize) {
		return fmt.Errorf("--size %d: want %d (the probe's tag, sequence and send time) to %d bytes", o.Size, pipeline.MinProbeSize, pipeline.MaxProbeSize)
	}
	if o.Interval < 0 || o.Timeout < 0 {
		return errors.New("--interval and --timeout must not be negative")
	}
	if o.Passive && o.Duration <= 0 {
		return fmt.Errorf("--duration %v: want a positive duration", o.Duration)
	}
	if err := checkLiveSizes(o.RingBytes, o.SpoolBytes, o.SpoolMem); err != nil {
		return err
	}
	if o.Filter != "" && !o.Passive {
		return errors.New("--filter goes with --passive: pathtrace's own probes are filtered already")
	}
	if o.Why && o.NoWhy {
		return errors.New("--why and --no-why: give one")
	}
	return nil
}

const spoolMemoryUsage = "of the spool, what stays in memory; the rest waits in an unlinked file in $TMPDIR (as large as --spool-size: no file)"

// checkLiveSizes checks the ring and spool sizes a live capture is given
// (trace and capture take the same flags); 0 means the default.
func checkLiveSizes(ring, spool, spoolMem byteSize) error {
	switch {
	case ring != 0 && ring < 1<<20:
		return fmt.Errorf("--ring-size %s: want at least 1MiB", &ring)
	case spool != 0 && spool < 4<<20:
		return fmt.Errorf("--spool-size %s: want at least 4MiB", &spool)
	case spoolMem != 0 && spoolMem < 2<<20:
		return fmt.Errorf("--spool-memory %s: want at least 2MiB", &spoolMem)
	}
	return nil
}

// run traces once: resolve, discover, trace (arm, probe, drain, correlate),
// report, then write the evidence. It returns the exit status as an
// exitError.
func (o *traceOptions) run(ctx context.Context) error {
	if o.cl.Cluster {
		return o.runCluster(ctx)
	}
	if err := o.clusterFlagsAlone(); err != nil {
		return usageError(err)
	}
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
		Path: path, Count: o.Count, Size: o.Size, Interval: o.Interval, Timeout: o.Timeout, TCP: o.tcpProbe(path),
		Passive: o.Passive, Duration: o.Duration, Window: o.Window,
		RingBytes: int(o.RingBytes), SpoolBytes: int(o.SpoolBytes), SpoolMemory: int(o.SpoolMem),
		Evidence: ev, Sink: out.sink(), Limit: o.Limit, Captured: counters.frame, Filter: filt,
		Why: !o.NoWhy && (!o.Passive || o.Why),
	})
	counters.done()
	if err != nil {
		return usageError(err)
	}
	return reportLive(out, ev, doc)
}

// reportLive writes a live run's report, then its evidence, and returns the
// run's status. The report goes out first, so a full disk cannot hide what
// was captured; a closed pipe does not stop the evidence either.
func reportLive(out *output, ev *pipeline.Evidence, doc report.Document) error {
	doc.Tool = buildTool()
	status := findings(doc.Live.Interrupted, doc.Result.Summary.Clean)
	if err := out.finish(doc); err != nil {
		status = reportError(err, doc.Live.Interrupted, doc.Result.Summary.Clean)
		var ee *exitError
		if errors.As(status, &ee) && ee.code == exitOutput {
			return status
		}
	}
	if err := ev.Finish(doc); err != nil {
		return outputError(err)
	}
	return status
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
		kr := o.kube.resolver()
		defer kr.Close()
		res = kr
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
	if dst.Inode != 0 && dst.Inode == src.Inode && src.IfIndex == dst.IfIndex {
		return nil, fmt.Errorf("--src %s and --dst %s are the same endpoint (network namespace %s): give two different ones",
			o.Src, o.Dst, src.Label)
	}
	var opts []discover.Option
	if n, ok := res.(discover.Namer); ok {
		opts = append(opts, discover.NetnsNames(n.NetnsNames()))
	}
	if n, ok := res.(discover.NodeNamer); ok {
		opts = append(opts, discover.NodeNames(n.NodeNames()))
	}
	path, err := discover.Discover(ctx, src, dst, opts...)
	if err != nil {
		return nil, fmt.Errorf("discover path %s → %s: %w", src.Label, dst.Label, err)
	}
	path.Notes = append(append(path.Notes, src.Notes...), dst.Notes...)
	if !o.Passive {
		k8s.ServicePath(path)
	}
	return path, nil
}

// tcpProbe is where TCP SYN probes go: a Service's ClusterIP and port
// (kube-proxy rewrites TCP to it, never ICMP echo), or the destination's
// --tcp-port; zero for ICMP echo.
func (o *traceOptions) tcpProbe(path *discover.Path) netip.AddrPort {
	if o.Passive {
		return netip.AddrPort{}
	}
	if o.TCPPort != 0 {
		return netip.AddrPortFrom(path.Dst.IP, o.TCPPort)
	}
	if s := path.Dst.Service; s != nil && s.ClusterIP.IsValid() && s.Port != 0 && s.ClusterIP.Is4() == path.Src.IP.Is4() {
		return netip.AddrPortFrom(s.ClusterIP, s.Port)
	}
	return netip.AddrPort{}
}
