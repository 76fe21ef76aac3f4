package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/lab"
)

type labOptions struct {
	Prefix string
	Subnet string
	Pods   int
	Routed bool
	JSON   bool
	Out    io.Writer
}

func (o *labOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Prefix, "prefix", "", "prefix for every namespace name, so several labs coexist (\"t1-\" → t1-node1, t1-pod1...)")
	f.StringVar(&o.Subnet, "subnet", "10.244.1.0/24", "the node's pod subnet: cni0 takes .1, pods .2, .3...")
	f.IntVar(&o.Pods, "pods", 2, "pods on cni0")
	f.BoolVar(&o.Routed, "routed", false, "add a second bridge cni1 on the next subnet with one more pod (a routed path)")
}

func (o *labOptions) config() (lab.Config, error) {
	sub, err := netip.ParsePrefix(o.Subnet)
	if err != nil {
		return lab.Config{}, fmt.Errorf("--subnet: %w", err)
	}
	return lab.Config{Prefix: o.Prefix, Subnet: sub, Pods: o.Pods, Routed: o.Routed}, nil
}

func newLabCmd(stdout io.Writer) *cobra.Command {
	o := &labOptions{Out: stdout}
	cmd := &cobra.Command{
		Use:   "lab up|down|status",
		Short: "Build the seed's Flannel node in network namespaces",
		Long: `The lab is the seed's node built in network namespaces: a node namespace
"node1" with the bridge cni0 (10.244.1.1/24, MTU 1450, hairpin on its ports),
pods "pod1" (10.244.1.2) and "pod2" (10.244.1.3) with eth0 and the seed's
routes, host veths named as the CNI bridge plugin names them. Nothing is
created in the namespace pathtrace runs in. 'up' is idempotent; 'down'
removes everything a lab made, also after pathtrace was killed.`,
		Example: `  sudo pathtrace lab up
  sudo pathtrace --src pod1 --dst pod2
  sudo pathtrace lab down

  # a second lab beside the first
  sudo pathtrace lab up --prefix t1- --subnet 10.99.1.0/24`,
	}
	up := o.sub("up", "Create the lab (or show the existing one)", true, func(ctx context.Context, cfg lab.Config) error {
		l, err := lab.Up(ctx, cfg)
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("lab up: %w", err)}
		}
		return o.print(l)
	})
	down := o.sub("down", "Remove everything the lab made", true, func(_ context.Context, cfg lab.Config) error {
		if err := lab.Down(cfg); err != nil {
			return &exitError{exitUsage, fmt.Errorf("lab down: %w", err)}
		}
		fmt.Fprintf(o.Out, "lab %q removed\n", cfg.Prefix)
		return nil
	})
	status := o.sub("status", "Show what the lab has", false, func(_ context.Context, cfg lab.Config) error {
		l, err := lab.Status(cfg)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return &exitError{exitUsage, fmt.Errorf("lab status: %w", err)}
		}
		if l == nil {
			fmt.Fprintf(o.Out, "no lab %q\n", cfg.Prefix)
			return &exitError{code: exitFindings}
		}
		return o.print(l)
	})
	for _, c := range []*cobra.Command{up, down, status} {
		o.addFlags(c)
		cmd.AddCommand(c)
	}
	status.Flags().BoolVar(&o.JSON, "json", false, "print the lab as JSON")
	up.Flags().BoolVar(&o.JSON, "json", false, "print the lab as JSON")
	return cmd
}

// sub builds a lab subcommand: flags to config, then (if priv) the
// capability check, before fn changes anything.
func (o *labOptions) sub(use, short string, priv bool, fn func(context.Context, lab.Config) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config()
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if priv {
				if err := checkLabPrivileges(); err != nil {
					return &exitError{exitUsage, err}
				}
			}
			return fn(cmd.Context(), cfg)
		},
	}
}

func (o *labOptions) print(l *lab.Lab) error {
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	_, err := fmt.Fprintln(o.Out, l.String())
	return err
}

// demoOptions: lab up, trace pod1 → pod2, print, lab down.
type demoOptions struct {
	trace traceOptions
	lab   labOptions
	Keep  bool
}

func newDemoCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &demoOptions{}
	o.trace.Out, o.trace.ErrOut, o.lab.Out = stdout, stderr, stdout
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build the lab, trace pod1 → pod2, print the story, remove the lab",
		Long: `Runs the main job on the embedded default: builds the seed's Flannel node in
network namespaces (see 'pathtrace lab'), traces pod1 → pod2 with three
probes, prints the hop-by-hop timeline and removes the lab again.`,
		Example: `  sudo pathtrace demo
  sudo pathtrace demo --format markdown --out /tmp/evidence`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	o.trace.outputOptions.addFlags(cmd)
	f := cmd.Flags()
	f.IntVarP(&o.trace.Count, "count", "c", 3, "echo probes to send")
	f.DurationVarP(&o.trace.Interval, "interval", "i", 200e6, "time between probes")
	f.DurationVar(&o.trace.Timeout, "timeout", 1e9, "how long to wait for the last reply")
	f.StringVarP(&o.trace.OutDir, "out", "o", "", "write evidence to DIR")
	f.BoolVar(&o.trace.Force, "force", false, "overwrite existing evidence files")
	f.StringVar(&o.lab.Prefix, "prefix", "", "lab namespace prefix")
	f.StringVar(&o.lab.Subnet, "subnet", "10.244.1.0/24", "lab pod subnet")
	f.BoolVar(&o.Keep, "keep", false, "leave the lab up afterwards")
	return cmd
}

func (o *demoOptions) run(ctx context.Context) error {
	o.lab.Pods = 2
	cfg, err := o.lab.config()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if err := checkLabPrivileges(); err != nil {
		return &exitError{exitUsage, err}
	}
	// A forced exit (second Ctrl-C) removes the lab too. Up itself stops
	// and undoes its work once the context is cancelled, so the cleanup
	// waits for it (briefly) rather than race it for the lab's lock.
	upDone := make(chan struct{})
	if !o.Keep {
		defer atInterrupt(func() {
			select {
			case <-upDone:
			case <-time.After(5 * time.Second):
			}
			lab.Down(cfg)
		})()
	}
	l, err := lab.Up(ctx, cfg)
	close(upDone)
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{exitInterrupted, fmt.Errorf("lab up: %w", context.Cause(ctx))}
		}
		return &exitError{exitUsage, fmt.Errorf("lab up: %w", err)}
	}
	if !o.Keep {
		defer func() {
			if derr := lab.Down(cfg); derr != nil {
				fmt.Fprintf(o.trace.ErrOut, "pathtrace: lab down: %v\n", derr)
			}
		}()
	}
	if ctx.Err() != nil {
		return &exitError{exitInterrupted, fmt.Errorf("lab up: %w", context.Cause(ctx))}
	}
	if len(l.Pods) < 2 {
		return &exitError{exitUsage, errors.New("lab has fewer than two pods")}
	}
	o.trace.Src, o.trace.Dst = l.Pods[0].Name, l.Pods[1].Name
	o.trace.Duration = time.Second
	return o.trace.run(ctx)
}
