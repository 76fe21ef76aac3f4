package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
)

// captureOptions are agent mode's flags: `pathtrace capture` captures this
// node's part of a path across nodes, for `pathtrace analyze` to put
// together with the other node's.
type captureOptions struct {
	IO *iostreams.IOStreams
	outputOptions
	Src, Dst   string
	Probe      bool
	Count      int
	Interval   time.Duration
	Timeout    time.Duration
	Size       int
	Duration   time.Duration
	OutDir     string
	Force      bool
	SharedOut  bool
	NoWhy      bool
	RingBytes  byteSize
	SpoolBytes byteSize
	SpoolMem   byteSize
	kube       kubeOptions

	// changed are the flags the command line gave (some exclude others).
	changed map[string]bool
	// Resolver, if set, replaces the Kubernetes-aware resolver (tests).
	Resolver discover.Resolver
}

// streamOut is --out's value for one pcapng on stdout.
const streamOut = "-"

func newCaptureCmd(ios *iostreams.IOStreams, runF func(context.Context, *captureOptions) error) *cobra.Command {
	o := &captureOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "capture --src ENDPOINT --dst ENDPOINT [--probe] --out DIR|- [flags]",
		Short: "Capture this node's part of a path across nodes (agent mode), for analyze to put together",
		Long: `Capture only this node's part of a path whose endpoints are on two nodes:
from the endpoint on this node (--src or --dst, resolved as the tracer
resolves it) out to the underlay device that carries the path to the other
node. The other endpoint is given by its IP, or as a pod the API server
knows; nothing on this node is searched for it.

Run it on both nodes at once: every node listens; only the source's node
sends probes, and only with --probe (then -c, -i, --size, --timeout shape
them, and the run ends --timeout after the last one). Without --probe the
capture ends after --duration (0: at Ctrl-C or SIGTERM).

The evidence (--out DIR) is the tracer's: a pcap per point, path.pcapng,
report.json/md/html of what this node saw. path.pcapng records the host, the
node, the run (source, destination, the probes' echo id) and which endpoint
is on this node, so 'pathtrace analyze nodeA/ nodeB/' puts the nodes back
together on one timeline, with the offset between their clocks estimated.
--out - writes that pcapng to stdout instead, as it is captured (for
'kubectl exec'): its header once every point is armed, then the frames in
stamp order, about 100 ms behind; no report.`,
		Example: `  # on node A, the source's node: listen and send 5 probes
  sudo pathtrace capture --src web-1 --dst 10.244.2.7 -n shop --probe -c 5 --out /tmp/nodeA
  # on node B, the destination's node, started first: listen for 30 s
  sudo pathtrace capture --src 10.244.1.3 --dst db-0 -n shop --duration 30s --out /tmp/nodeB
  # anywhere: one timeline across both nodes
  pathtrace analyze /tmp/nodeA /tmp/nodeB

  # through kubectl exec (a privileged hostNetwork pod on the node)
  kubectl exec -n pathtrace agent-x7k2 -- pathtrace capture --src web-1 --dst db-0 -n shop --duration 20s --out - > nodeB.pcapng`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = map[string]bool{}
			cmd.Flags().Visit(func(f *pflag.Flag) { o.changed[f.Name] = true })
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return o.run(cmd.Context())
		},
	}
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "source endpoint: on this node as the tracer takes it, or the other node's pod (NAME, NAMESPACE/NAME) or IP")
	f.StringVar(&o.Dst, "dst", "", "destination endpoint: as --src; one of the two must be on this node")
	f.BoolVar(&o.Probe, "probe", false, "send echo probes from the source (on the source's node only)")
	f.IntVarP(&o.Count, "count", "c", 3, "with --probe: echo probes to send")
	f.DurationVarP(&o.Interval, "interval", "i", 200*time.Millisecond, "with --probe: time between probes")
	f.DurationVar(&o.Timeout, "timeout", time.Second, "with --probe: how long to wait after the last probe")
	f.IntVar(&o.Size, "size", pipeline.DefaultProbeSize, fmt.Sprintf("with --probe: echo payload bytes (%d to %d)", pipeline.MinProbeSize, pipeline.MaxProbeSize))
	f.DurationVar(&o.Duration, "duration", 10*time.Second, "without --probe: capture time (0: until Ctrl-C or SIGTERM)")
	f.StringVarP(&o.OutDir, "out", "o", "", "write evidence to DIR (a pcap per point, path.pcapng, reports), or - for path.pcapng on stdout as it is captured")
	f.BoolVar(&o.Force, "force", false, "overwrite existing evidence files")
	f.BoolVar(&o.SharedOut, "allow-shared-out", false, "write evidence into a folder others can write or another user owns")
	f.BoolVar(&o.NoWhy, "no-why", false, "do not ask the kernel why frames between the endpoints were dropped (with --out DIR it does, on either node)")
	o.kube.addFlags(cmd)
	f.Var(&o.RingBytes, "ring-size", "capture ring per point: bytes or 4MiB, 16M... (default 4MiB with --probe, 16MiB without)")
	o.SpoolBytes = pipeline.DefaultSpoolBytes
	f.Var(&o.SpoolBytes, "spool-size", "frames captured but not yet correlated: bytes or 256MiB, 1G...")
	o.SpoolMem = pipeline.DefaultSpoolMemory
	f.Var(&o.SpoolMem, "spool-memory", spoolMemoryUsage)
	return cmd
}

// captureProbeFlags shape probes: without --probe they are refused.
var captureProbeFlags = []string{"count", "interval", "timeout", "size"}

// streamRefused are the flags that write to stdout or to a folder, which
// --out - replaces.
var streamRefused = []string{"format", "limit", "detail", "force", "allow-shared-out"}

func (o *captureOptions) validate() error {
	if err := o.outputOptions.validate(); err != nil {
		return err
	}
	if o.Src == "" || o.Dst == "" {
		return errors.New("give both --src and --dst: the endpoint on this node and the other node's (its IP or pod)")
	}
	if o.OutDir == "" {
		return errors.New("give --out DIR for the evidence, or --out - for one pcapng on stdout: analyze puts the nodes' captures together")
	}
	var given []string
	for _, n := range captureProbeFlags {
		if o.changed[n] {
			given = append(given, "--"+n)
		}
	}
	if !o.Probe && len(given) > 0 {
		return fmt.Errorf("%s shape probes, and without --probe this node sends none: add --probe (on the source's node) or drop them", strings.Join(given, ", "))
	}
	if o.Probe && o.changed["duration"] {
		return errors.New("--duration is the capture time without --probe; with --probe the capture ends --timeout after the last probe")
	}
	if o.Probe && (o.Count < 1 || o.Count > 65535) {
		return fmt.Errorf("--count %d: want 1 to 65535", o.Count)
	}
	if o.Probe && (o.Size < pipeline.MinProbeSize || o.Size > pipeline.MaxProbeSize) {
		return fmt.Errorf("--size %d: want %d to %d bytes", o.Size, pipeline.MinProbeSize, pipeline.MaxProbeSize)
	}
	if o.Interval < 0 || o.Timeout < 0 || o.Duration < 0 {
		return errors.New("--interval, --timeout and --duration must not be negative")
	}
	if err := checkLiveSizes(o.RingBytes, o.SpoolBytes, o.SpoolMem); err != nil {
		return err
	}
	if o.OutDir != streamOut {
		return nil
	}
	for _, n := range streamRefused {
		if o.changed[n] {
			return fmt.Errorf("--out - writes the capture to stdout, so --%s has nowhere to go: drop it, or give --out DIR", n)
		}
	}
	if o.IO.IsStdoutTTY() {
		return errors.New("--out - writes binary pcapng to stdout, which is a terminal: redirect it (> node.pcapng) or give --out DIR")
	}
	return nil
}

// run resolves the two ends, discovers this node's part, captures it and
// writes the evidence or the stream.
func (o *captureOptions) run(ctx context.Context) error {
	if err := o.validate(); err != nil {
		return usageError(err)
	}
	if err := checkPrivileges(); err != nil {
		return usageError(err)
	}
	var ev *pipeline.Evidence
	var err error
	if o.OutDir != streamOut {
		if ev, err = pipeline.NewEvidence(o.OutDir, o.Force, o.SharedOut); err != nil {
			return usageError(err)
		}
	}
	ends, err := o.resolveEnds(ctx)
	if err != nil {
		return usageError(err)
	}
	if o.Probe && ends.local == pipeline.SideDst {
		return usageError(fmt.Errorf("--probe: probes leave from the source, and --src %s is not on this node: give --probe on its node", o.Src))
	}
	host, _ := os.Hostname()
	ao := pipeline.AgentOptions{
		TraceOptions: pipeline.TraceOptions{
			Path: ends.path, Count: o.Count, Size: o.Size, Interval: o.Interval, Timeout: o.Timeout,
			Passive: !o.Probe, Duration: o.duration(), Window: o.Window,
			RingBytes: int(o.RingBytes), SpoolBytes: int(o.SpoolBytes), SpoolMemory: int(o.SpoolMem), Evidence: ev, Limit: o.Limit,
			// Both ends watch for drops (the destination's node by the
			// endpoints' addresses, as --passive --why does): a policy on
			// the destination's node is where probes most often die. The
			// drops travel in path.pcapng, so only with --out DIR.
			Why: !o.NoWhy && ev != nil,
		},
		Local: ends.local, Host: host, Node: ends.node,
	}
	var out *output
	if ev != nil {
		out = o.start(o.IO.Out)
		ao.Sink = out.sink()
	} else {
		ao.Stream = o.IO.Out
	}
	ao.Armed = func(uint16) { o.armed(ends) }
	doc, rec, err := pipeline.Capture(ctx, ao)
	if err != nil && doc.Result == nil {
		return usageError(err)
	}
	if err != nil { // the stream could not be written
		return outputError(err)
	}
	if ev == nil {
		o.streamed(rec, doc.Result.Summary.Frames, doc.Result.Summary.Verdict)
		return findings(doc.Live.Interrupted, doc.Result.Summary.Clean)
	}
	return reportLive(out, ev, doc)
}

// duration is the capture time without probes: 0 runs until a signal.
func (o *captureOptions) duration() time.Duration {
	if o.Duration == 0 {
		return 1<<63 - 1
	}
	return o.Duration
}

// armed says on stderr, in one line, that every point is capturing: the
// moment another node may start sending (with --out -, the stream's header
// is on stdout by then).
func (o *captureOptions) armed(e *captureEnds) {
	if o.Quiet {
		return
	}
	fmt.Fprintf(o.IO.ErrOut, "pathtrace capture: armed %d points on node %s (%s %s is here, %s %s on the other node)\n",
		len(e.path.Points), e.nodeLabel(), e.local, e.path.Src.Label, e.local.Other(), e.path.Dst.IP)
}

// streamed ends a --out - run with one line on stderr.
func (o *captureOptions) streamed(rec pipeline.AgentRecord, frames int, verdict string) {
	if o.Quiet {
		return
	}
	fmt.Fprintf(o.IO.ErrOut, "pathtrace capture: %d frames of node %s streamed; %s\n", frames, rec.Node, verdict)
}
