package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

type analyzeOptions struct {
	IO *iostreams.IOStreams
	outputOptions
	Points       []string
	Order        []string
	MTU          int
	Reorder      time.Duration
	ClockOffsets []string
	ClockGroups  []string
	Filter       string
	Args         []string
}

func newAnalyzeCmd(ios *iostreams.IOStreams, runF func(context.Context, *analyzeOptions) error) *cobra.Command {
	o := &analyzeOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "analyze [flags] FILE|DIR|NAME=FILE...",
		Short: "Correlate saved captures taken at several points of a path",
		Long: `Correlate captures taken at several points of one path (pcap, pcapng, gzip;
Ethernet, Linux SLL/SLL2 from 'tcpdump -i any', raw IP) into a hop-by-hop
timeline: when each frame crossed each point, the latency of every hop, what
changed on the way and where frames vanished.

Path order is the order of the arguments, unless the first frames of the
files clearly follow another, both ways (files of one host listed
alphabetically, as by '*.cap'): the points are then placed in the traffic's
order, and the report says so. Each
single-interface file is a point named after its base name (pod1-veth.cap →
pod1-veth). The interfaces of a multi-interface file (pcapng, 'tcpdump -i any')
and the files of a directory are placed by the traffic; --order overrides.`,
		Example: `  # five tcpdumps along one path (pod1 → pod2 on a Flannel node), in path order
  pathtrace analyze pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap

  # a directory of captures: order inferred from the traffic
  pathtrace analyze incident-4711/

  # a glob lists files alphabetically: placed by the traffic, and said so
  pathtrace analyze incident-4711/*.cap

  # one dumpcap pcapng with three interfaces between two pod captures
  pathtrace analyze pod1.cap node.pcapng pod2.cap

  # name points, fix the order, write a ticket report
  pathtrace analyze a=eth0.pcap b=veth.pcap.gz --order b,a -f markdown > report.md`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Args = args
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return o.run(cmd.Context())
		},
	}
	o.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&o.Points, "point", nil, "a named capture point NAME=FILE (repeatable; placed before the arguments)")
	f.StringSliceVar(&o.Order, "order", nil, "path order as point names a,b,c (overrides the argument order and inference)")
	f.IntVar(&o.MTU, "mtu", 0, "link MTU to check frame sizes against (0: unknown)")
	f.DurationVar(&o.Reorder, "reorder", time.Duration(pipeline.DefaultReorder), "how far back in time a capture may jump and still be merged in order")
	f.StringArrayVar(&o.ClockOffsets, "clock-offset", nil, "POINT=DURATION: POINT's clock is DURATION ahead of the first point's (repeatable); 'off': no clock correction")
	f.StringVar(&o.Filter, "filter", "", "keep only frames matching this tcpdump expression (host, net, port, portrange, icmp, tcp, udp, arp, ip, ip6, vlan, and/or/not); tunnelled frames match on their inner frame too")
	f.StringArrayVar(&o.ClockGroups, "clock-group", nil, "NAME=POINT,POINT...: these points' captures share one clock (one host); repeatable")
	return cmd
}

// inputs are the --point flags, then the arguments.
func (o *analyzeOptions) inputs() ([]pipeline.Input, error) {
	var inputs []pipeline.Input
	for _, p := range o.Points {
		in := pipeline.ParseInput(p)
		if in.Name == "" {
			return nil, fmt.Errorf("--point %q: want NAME=FILE", p)
		}
		inputs = append(inputs, in)
	}
	for _, a := range o.Args {
		inputs = append(inputs, pipeline.ParseInput(a))
	}
	if o.Reorder <= 0 {
		return nil, fmt.Errorf("--reorder %v: want a positive duration", o.Reorder)
	}
	if len(inputs) == 0 {
		return nil, errors.New("no captures: give FILE, DIR or NAME=FILE arguments (see pathtrace analyze --help)")
	}
	return inputs, nil
}

// clocks are the clock flags as the pipeline takes them.
func (o *analyzeOptions) clocks() (pipeline.ClockOptions, error) {
	var c pipeline.ClockOptions
	for _, v := range o.ClockOffsets {
		if v == "off" {
			c.Off = true
			continue
		}
		name, d, ok := strings.Cut(v, "=")
		dur, err := time.ParseDuration(d)
		if !ok || name == "" || err != nil {
			return c, fmt.Errorf("--clock-offset %q: want POINT=DURATION (e.g. node2-eth0=16ms, -3ms) or off", v)
		}
		if c.Declared == nil {
			c.Declared = map[string]time.Duration{}
		}
		c.Declared[name] = dur
	}
	for _, v := range o.ClockGroups {
		_, list, ok := strings.Cut(v, "=")
		names := strings.Split(list, ",")
		if !ok || len(names) < 2 || slices.Contains(names, "") {
			return c, fmt.Errorf("--clock-group %q: want NAME=POINT,POINT...", v)
		}
		c.Groups = append(c.Groups, names)
	}
	if c.Off && (len(c.Declared) > 0) {
		return c, errors.New("--clock-offset off and a declared offset contradict each other")
	}
	return c, nil
}

func (o *analyzeOptions) run(ctx context.Context) error {
	if err := o.validate(); err != nil {
		return usageError(err)
	}
	inputs, err := o.inputs()
	if err != nil {
		return usageError(err)
	}
	clocks, err := o.clocks()
	if err != nil {
		return usageError(err)
	}
	filt, err := filter.Compile(o.Filter)
	if err != nil {
		return usageError(err)
	}
	out := o.start(o.IO.Out)
	var rp *readProgress
	res, err := pipeline.Run(ctx, pipeline.Options{
		Inputs: inputs, Order: o.Order, MTU: o.MTU, Window: o.Window, Reorder: o.Reorder, Clocks: clocks, Filter: filt,
		Sink: out.sink(), Limit: o.Limit,
		Progress: func(p pipeline.Progress) {
			if rp == nil {
				rp = newReadProgress(o.IO, o.Quiet, p.Total)
			}
			rp.update(p)
		},
	})
	rp.done()
	interrupted := errors.Is(err, pipeline.ErrInterrupted)
	if err != nil && !interrupted {
		return usageError(err)
	}
	if res.Summary.Frames == 0 && interrupted {
		return &exitError{exitInterrupted, fmt.Errorf("interrupted before a frame was read: %w", context.Cause(ctx))}
	}
	if res.Summary.Frames == 0 {
		var names []string
		for _, in := range inputs {
			names = append(names, in.Path)
		}
		return usageError(fmt.Errorf("no frames in %s: nothing to analyse", strings.Join(names, ", ")))
	}
	if err := out.finish(report.Document{Result: res}); err != nil {
		return reportError(err, interrupted, res.Summary.Clean)
	}
	return findings(interrupted, res.Summary.Clean)
}
