package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/analysis"
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
	if o.Reorder <= 0 {
		return &exitError{exitUsage, fmt.Errorf("--reorder %v: want a positive duration", o.Reorder)}
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
	var rp *readProgress
	res, err := analysis.Run(ctx, analysis.Options{
		Inputs: inputs, Order: o.Order, MTU: o.MTU, Window: o.Window, Reorder: o.Reorder,
		Sink: sink, Limit: o.Limit,
		Progress: func(read, total int64, frames int) {
			if rp == nil {
				rp = newReadProgress(o.ErrOut, o.Quiet, total)
			}
			rp.update(read, frames)
		},
	})
	rp.done()
	interrupted := errors.Is(err, analysis.ErrInterrupted)
	if err != nil && !interrupted {
		return &exitError{exitUsage, err}
	}
	if res.Summary.Frames == 0 {
		var names []string
		for _, in := range inputs {
			names = append(names, in.Path)
		}
		return &exitError{exitUsage, fmt.Errorf("no frames in %s: nothing to analyse", strings.Join(names, ", "))}
	}
	if stream != nil {
		err = stream.Finish(report.Document{Result: res})
	} else {
		err = o.render(o.Out, report.Document{Result: res})
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	switch {
	case interrupted:
		return &exitError{code: exitInterrupted}
	case !res.Summary.Clean:
		return &exitError{code: exitFindings}
	}
	return nil
}
