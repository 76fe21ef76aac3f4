package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pathtrace/pathtrace/internal/interrupt"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/spf13/cobra"
)

// demoOptions: lab up, trace pod1 → pod2, print, lab down.
type demoOptions struct {
	trace traceOptions
	lab   labOptions
	Keep  bool
	Nodes int // 2: across two nodes (demo_nodes.go)
}

func newDemoCmd(ios *iostreams.IOStreams, runF func(context.Context, *demoOptions) error) *cobra.Command {
	o := &demoOptions{}
	o.trace.IO, o.lab.IO = ios, ios
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build a lab of its own, trace pod1 → pod2, print the story, remove the lab",
		Long: `Runs the main job on the embedded default: builds a Flannel node in network
namespaces of its own (see 'pathtrace lab'; the names start with "demo-"),
traces demo-pod1 → demo-pod2 with three probes, prints the hop-by-hop
timeline and removes the lab again. With --nodes 2 the lab is two nodes on a
wire (demo-nodeA with demo-pod1, demo-nodeB with demo-pod2) joined by
--backend, and the trace follows the path across both nodes: ten points, one
clock. It never touches a lab it did not make: if a lab or a namespace with
its names exists, it refuses to start.`,
		Example: `  sudo pathtrace demo
  sudo pathtrace demo --nodes 2                  # across two nodes over Flannel's VXLAN
  sudo pathtrace demo --nodes 2 --backend ipip   # or host-gw, udp, geneve; --cni calico
  sudo pathtrace demo --format markdown --out /tmp/evidence`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return o.run(cmd.Context())
		},
	}
	o.trace.addProbeFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.lab.Prefix, "prefix", DemoPrefix, "the demo lab's namespace prefix")
	f.StringVar(&o.lab.Subnet, "subnet", "10.244.1.0/24", "lab pod subnet")
	f.BoolVar(&o.Keep, "keep", false, "leave the lab up afterwards")
	o.addNodesFlags(cmd)
	return cmd
}

func (o *demoOptions) run(ctx context.Context) error {
	o.lab.Pods = 2
	dl, err := o.demoLab()
	if err != nil {
		return usageError(err)
	}
	if err := checkDemoPrivileges(); err != nil {
		return usageError(err)
	}
	if err := dl.privileges(); err != nil {
		return usageError(err)
	}
	if _, err := o.trace.evidence(); err != nil { // a refused folder must not cost a lab
		return usageError(err)
	}
	// Its own lab or none: the demo removes its lab at the end.
	if err := dl.taken(); err != nil {
		return usageError(demoTaken(dl.prefix, err))
	}
	// A forced exit (second Ctrl-C) removes the lab too. Up itself stops
	// and undoes its work once the context is cancelled, so the cleanup
	// waits for it (briefly) rather than race it for the lab's lock.
	upDone := make(chan struct{})
	if !o.Keep {
		defer interrupt.AtExit(func() {
			select {
			case <-upDone:
			case <-time.After(5 * time.Second):
			}
			dl.down()
		})()
	}
	l, err := dl.up(ctx)
	close(upDone)
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{exitInterrupted, fmt.Errorf("lab up: %w", context.Cause(ctx))}
		}
		if errors.Is(err, lab.ErrTaken) {
			return usageError(demoTaken(dl.prefix, err))
		}
		return usageError(fmt.Errorf("lab up: %w", err))
	}
	if !o.Keep {
		defer func() {
			if derr := dl.down(); derr != nil {
				fmt.Fprintf(o.trace.IO.ErrOut, "pathtrace: lab down: %v\n", derr)
			}
		}()
	}
	if ctx.Err() != nil {
		return &exitError{exitInterrupted, fmt.Errorf("lab up: %w", context.Cause(ctx))}
	}
	if len(l.Pods) < 2 {
		return usageError(errors.New("lab has fewer than two pods"))
	}
	o.trace.Src, o.trace.Dst = l.Pods[0].Name, l.Pods[1].Name
	o.trace.Duration = time.Second
	return o.trace.run(ctx)
}

// DemoPrefix names the demo's own lab (demo-node1, demo-pod1, demo-pod2),
// apart from the default lab 'pathtrace lab up' builds.
const DemoPrefix = "demo-"

func demoTaken(prefix string, err error) error {
	return fmt.Errorf("demo: %v: the demo removes its lab afterwards, so it only uses one it makes; "+
		"remove that one with 'pathtrace lab down --prefix %s' or give the demo another --prefix", err, prefix)
}
