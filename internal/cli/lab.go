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
	Prefix  string
	Subnet  string
	Pods    int
	Routed  bool
	Nodes   int
	Backend lab.Backend
	CNI     lab.CNI
	JSON    bool
	IO      *iostreams.IOStreams
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
after pathtrace was killed.

With --nodes 2: nodes "nodeA" and "nodeB" whose eth0 (192.168.56.1 and .2)
hang off a switch namespace "wire" (with "ext", 192.168.56.3, a host outside
the cluster), each with cni0 and one pod made by the CNI bridge plugin with
Flannel's configuration (pod1 10.244.1.2 on nodeA, pod2 10.244.2.2 on nodeB),
joined by --backend: vxlan (flannel.1 as flanneld sets it up), host-gw (a
route via the peer node), ipip (tunl0, Calico's IP-in-IP), udp (flannel0,
Flannel's UDP 8285), geneve (genev_sys_6081, UDP 6081) or ipsec (ipsec0, ESP
in tunnel mode with the lab's published keys). This kernel has no ipip or
geneve devices and no ESP: those tunnels, and Flannel's udp one (a userspace
tunnel in flanneld too), run as a pathtrace process per node that lives
until 'down'.`,
		Example: `  sudo pathtrace lab up
  sudo pathtrace --src pod1 --dst pod2
  sudo pathtrace lab down

  # a second lab beside the first
  sudo pathtrace lab up --prefix t1- --subnet 10.99.1.0/24

  # two nodes joined by a wire, pod1 on nodeA, pod2 on nodeB, Flannel's VXLAN between them
  sudo pathtrace lab up --nodes 2 --backend vxlan`,
	}
	up := o.sub("up", "Create the lab (or show the existing one)", true, func(ctx context.Context, cfg lab.Config) error {
		var l *lab.Lab
		var err error
		if o.Nodes == 2 {
			if o.Backend.RawSockets() {
				if err := checkLabRawPrivileges(); err != nil {
					return usageError(err)
				}
			}
			l, err = lab.UpNodes(ctx, lab.NodesConfig{Prefix: cfg.Prefix, Backend: o.Backend, CNI: o.CNI})
		} else {
			l, err = lab.Up(ctx, cfg)
		}
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
	up.Flags().IntVar(&o.Nodes, "nodes", 1, `1: one node (the seed's); 2: nodes "nodeA" and "nodeB" on a wire with pod1 (10.244.1.2) and pod2 (10.244.2.2)`)
	o.Backend = lab.BackendVXLAN
	up.Flags().TextVar(&o.Backend, "backend", lab.BackendVXLAN, "with --nodes 2, how pods cross between the nodes: vxlan (flannel.1), host-gw, ipip (tunl0), udp (flannel0), geneve (genev_sys_6081), ipsec (ipsec0, ESP); with --cni calico: ipip (default), vxlan (vxlan.calico), host-gw (BGP routes)")
	up.Flags().TextVar(&o.CNI, "cni", lab.CNIFlannel, "with --nodes 2, what wires the pods: flannel (the CNI bridge plugin, cni0) or calico (cali* veths, /32 routes, proxy ARP for 169.254.1.1)")
	up.PreRunE = func(c *cobra.Command, _ []string) error {
		if o.Nodes != 1 && o.Nodes != 2 {
			return usageError(fmt.Errorf("--nodes %d: 1 or 2", o.Nodes))
		}
		for _, f := range []string{"subnet", "pods", "routed"} {
			if o.Nodes == 2 && c.Flags().Changed(f) {
				return usageError(fmt.Errorf("--%s applies to a one-node lab, not with --nodes 2", f))
			}
		}
		if o.Nodes == 1 && (c.Flags().Changed("backend") || c.Flags().Changed("cni")) {
			return usageError(errors.New("--backend and --cni need --nodes 2"))
		}
		if o.CNI == lab.CNICalico && !c.Flags().Changed("backend") {
			o.Backend = lab.BackendIPIP // Calico's default
		}
		return nil
	}
	cmd.AddCommand(newLabTunnelCmd())
	return cmd
}

// newLabTunnelCmd is the hidden "lab tunnel": the userspace tunnel process
// a two-node lab starts on each node for its ipip, udp and geneve backends
// (lab.TunnelMain; it runs until "lab down" kills it).
func newLabTunnelCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "tunnel",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if code := lab.TunnelMain(args); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
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
