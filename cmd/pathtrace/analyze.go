package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/report"
)

// outputOptions are shared by analyze and the live tracer.
type outputOptions struct {
	Format string
	Limit  int
	Detail bool
	Window time.Duration
	Quiet  bool
}

func (o *outputOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Format, "format", "f", "table", "output format: table, json or markdown")
	f.IntVar(&o.Limit, "limit", 20, "traces shown in table and markdown output (0: all)")
	f.BoolVar(&o.Detail, "detail", false, "table: one row per hop (time, MACs, TTL, direction) instead of one row per trace")
	f.DurationVar(&o.Window, "window", time.Second, "how far apart in time two sightings of one frame may be")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "no progress output on stderr")
}

func (o *outputOptions) validate() error {
	switch o.Format {
	case "table", "json", "markdown", "md":
	default:
		return fmt.Errorf("--format %q: want table, json or markdown", o.Format)
	}
	if o.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", o.Limit)
	}
	if o.Window <= 0 {
		return fmt.Errorf("--window %v: want a positive duration", o.Window)
	}
	return nil
}

// render writes the document in the chosen format.
func (o *outputOptions) render(w io.Writer, d report.Document) error {
	ro := report.Options{Limit: o.Limit, Detail: o.Detail}
	switch o.Format {
	case "json":
		return report.JSON(w, d)
	case "markdown", "md":
		return report.Markdown(w, d, ro)
	default:
		return report.Table(w, d, ro)
	}
}

type analyzeOptions struct {
	outputOptions
	Points  []string
	Order   []string
	MTU     int
	Reorder time.Duration

	Out, ErrOut io.Writer
}

func newAnalyzeCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &analyzeOptions{Out: stdout, ErrOut: stderr}
	cmd := &cobra.Command{
		Use:   "analyze [flags] FILE|DIR|NAME=FILE...",
		Short: "Correlate saved captures taken at several points of a path",
		Long: `Correlate captures taken at several points of one path (pcap, pcapng, gzip;
Ethernet, Linux SLL/SLL2 from 'tcpdump -i any', raw IP) into a hop-by-hop
timeline: when each frame crossed each point, the latency of every hop, what
changed on the way and where frames vanished.

Path order is the order of the arguments. Each single-interface file is a
point named after its base name (pod1-veth.cap → pod1-veth). The interfaces of
a multi-interface file (pcapng, 'tcpdump -i any') and the files of a directory
are placed by the traffic; --order overrides.`,
		Example: `  # the seed's five captures, in path order
  pathtrace analyze pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap

  # a directory of captures: order inferred from the traffic
  pathtrace analyze incident-4711/

  # one dumpcap pcapng with three interfaces between two pod captures
  pathtrace analyze pod1.cap node.pcapng pod2.cap

  # name points, fix the order, write a ticket report
  pathtrace analyze a=eth0.pcap b=veth.pcap.gz --order b,a -f markdown > report.md`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args)
		},
	}
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&o.Points, "point", nil, "a named capture point NAME=FILE (repeatable; placed before the arguments)")
	f.StringSliceVar(&o.Order, "order", nil, "path order as point names a,b,c (overrides the argument order and inference)")
	f.IntVar(&o.MTU, "mtu", 0, "link MTU to check frame sizes against (0: unknown)")
	f.DurationVar(&o.Reorder, "reorder", time.Duration(capture.DefaultReorder), "how far back in time a capture may jump and still be merged in order")
	return cmd
}

func (o *analyzeOptions) run(ctx context.Context, args []string) error {
	if err := o.validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	var inputs []capture.Input
	for _, p := range o.Points {
		in := capture.ParseInput(p)
		if in.Name == "" {
			return &exitError{exitUsage, fmt.Errorf("--point %q: want NAME=FILE", p)}
		}
		inputs = append(inputs, in)
	}
	for _, a := range args {
		inputs = append(inputs, capture.ParseInput(a))
	}
	if len(inputs) == 0 {
		return &exitError{exitUsage, fmt.Errorf("no captures: give FILE, DIR or NAME=FILE arguments (see pathtrace analyze --help)")}
	}
	// JSON is written as the correlator emits traces, so memory does not
	// grow with the input; the other formats keep the first --limit traces.
	var stream *report.JSONStream
	var sink func(*correlate.Trace)
	if o.Format == "json" {
		stream = report.NewJSONStream(o.Out)
		sink = stream.Trace
	}
	res, err := analyzeInputs(ctx, inputs, o.Order, o.MTU, o.Window, o.Reorder, sink, o.Limit, o.progress)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if stream != nil {
		err = stream.Finish(report.Document{Result: res})
	} else {
		err = o.render(o.Out, report.Document{Result: res})
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if !res.Summary.Clean {
		return &exitError{code: exitFindings}
	}
	return nil
}

// analyzeInputs runs the offline pipeline: bundle → merger → correlator.
// With a sink every trace goes there as it is emitted; otherwise the first
// limit are kept in the result (0: all), the rest only counted.
func analyzeInputs(ctx context.Context, inputs []capture.Input, order []string, mtu int, window, reorder time.Duration, sink func(*correlate.Trace), limit int, progress func(total int64) *readProgress) (*correlate.Result, error) {
	b, err := capture.OpenBundle(inputs, order, int64(window))
	if err != nil {
		return nil, err
	}
	specs := b.Specs()
	for i := range specs {
		if mtu > 0 && specs[i].MTU == 0 {
			specs[i].MTU = mtu
		}
	}
	var traces []correlate.Trace
	if sink == nil {
		sink = func(t *correlate.Trace) {
			if limit == 0 || len(traces) < limit {
				traces = append(traces, t.Clone())
			}
		}
	}
	eng, err := correlate.New(correlate.Config{Points: specs, Window: int64(window)}, sink)
	if err != nil {
		return nil, err
	}
	m, files, err := b.Open(int64(reorder), func(p int, ifc capture.Interface, early bool) {
		eng.Close(p, early)
		if ifc.HasDrops {
			eng.SetDrops(p, ifc.Drops)
		}
	})
	if err != nil {
		return nil, err
	}
	defer files.Close()
	var rp *readProgress
	if progress != nil {
		_, total := files.Progress()
		rp = progress(total)
	}
	var f correlate.Frame
	n := 0
	for ; m.Next(&f); n++ {
		if n&0xffff == 0 {
			if ctx.Err() != nil {
				rp.done()
				return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
			}
			read, _ := files.Progress()
			rp.update(read, n)
		}
		eng.Add(&f)
	}
	rp.done()
	for _, w := range b.Warnings {
		eng.Warn(w)
	}
	for _, w := range m.Warnings() {
		eng.Warn(w)
	}
	if len(b.OrderInferred) > 0 {
		eng.Warn(fmt.Sprintf("point order inferred from the traffic for %s: %s (use --order to override)",
			strings.Join(b.OrderInferred, ", "), strings.Join(pointNames(b), ",")))
	}
	res := eng.Finish()
	res.Traces = traces
	return res, nil
}

// progress starts the read progress bar on a terminal stderr, unless --quiet.
func (o *analyzeOptions) progress(total int64) *readProgress {
	return newReadProgress(o.ErrOut, o.Quiet, total)
}

func pointNames(b *capture.Bundle) []string {
	var s []string
	for _, p := range b.Points {
		s = append(s, p.Name)
	}
	return s
}
