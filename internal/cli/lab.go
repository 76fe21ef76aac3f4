package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/lab"
)

type labOptions struct {
	Prefix string
	Subnet string
	Pods   int
	Routed bool
	JSON   bool
	IO     *iostreams.IOStreams
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

func newLabCmd(ios *iostreams.IOStreams) *cobra.Command {
	o := &labOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "lab up|down|status",
		Short: "Build a Flannel node in network namespaces",
		Long: `The lab is a Flannel node built in network namespaces: a node namespace
"node1" with the bridge cni0 (10.244.1.1/24, MTU 1450, hairpin on its ports),
pods "pod1" (10.244.1.2) and "pod2" (10.244.1.3) with eth0 and a pod's
routes (default and 10.244.0.0/16 via 10.244.1.1), host veths named as the
CNI bridge plugin names them. Nothing is created in the namespace pathtrace
runs in. 'up' is idempotent; 'down' removes everything a lab made, also
after pathtrace was killed.`,
		Example: `  sudo pathtrace lab up
  sudo pathtrace --src pod1 --dst pod2
  sudo pathtrace lab down

  # a second lab beside the first
  sudo pathtrace lab up --prefix t1- --subnet 10.99.1.0/24`,
	}
	up := o.sub("up", "Create the lab (or show the existing one)", true, func(ctx context.Context, cfg lab.Config) error {
		l, err := lab.Up(ctx, cfg)
		if err != nil {
			return usageError(fmt.Errorf("lab up: %w", err))
		}
		return o.print(l)
	})
	down := o.sub("down", "Remove everything the lab made", true, func(_ context.Context, cfg lab.Config) error {
		_, serr := lab.Status(cfg)
		existed := !errors.Is(serr, os.ErrNotExist)
		if err := lab.Down(cfg); err != nil {
			return usageError(fmt.Errorf("lab down: %w", err))
		}
		if existed {
			fmt.Fprintf(o.IO.Out, "%s removed\n", labName(cfg.Prefix))
		} else {
			fmt.Fprintf(o.IO.Out, "no %s: nothing to remove\n", labName(cfg.Prefix))
		}
		return nil
	})
	status := o.sub("status", "Show what the lab has", false, func(_ context.Context, cfg lab.Config) error {
		l, err := lab.Status(cfg)
		switch {
		case errors.Is(err, os.ErrPermission):
			return usageError(fmt.Errorf("lab status: needs root: labs keep their state in %s, which only root may read (run it with sudo)", lab.StateDir))
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return usageError(fmt.Errorf("lab status: %w", err))
		case l == nil:
			fmt.Fprintf(o.IO.Out, "no %s\n", labName(cfg.Prefix))
			return &exitError{code: exitFindings}
		}
		return o.print(l)
	})
	for _, c := range []*cobra.Command{up, down, status} {
		o.addFlags(c)
		cmd.AddCommand(c)
	}
	// down and status find a lab by its prefix alone; the build flags are
	// still accepted there (scripts pass the same flags to every
	// subcommand) but not offered.
	for _, c := range []*cobra.Command{down, status} {
		for _, n := range []string{"subnet", "pods", "routed"} {
			c.Flags().MarkHidden(n)
		}
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
				return usageError(err)
			}
			if priv {
				if err := checkLabPrivileges(); err != nil {
					return usageError(err)
				}
			}
			return fn(cmd.Context(), cfg)
		},
	}
}

// labName is how messages name a lab: "lab" for the default one (no
// prefix), `lab "t1-"` for another.
func labName(prefix string) string {
	if prefix == "" {
		return "lab"
	}
	return fmt.Sprintf("lab %q", prefix)
}

func (o *labOptions) print(l *lab.Lab) error {
	var err error
	if o.JSON {
		enc := json.NewEncoder(o.IO.Out)
		enc.SetIndent("", "  ")
		err = enc.Encode(l)
	} else {
		_, err = fmt.Fprintln(o.IO.Out, l.String())
	}
	if err != nil {
		return reportError(err, false, true)
	}
	return nil
}
