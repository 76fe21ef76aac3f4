package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pathtrace/pathtrace/lab"
)

// demoLab is the lab a demo builds, traces and removes: one node, or two
// with an overlay (--nodes 2).
type demoLab struct {
	prefix     string
	taken      func() error
	up         func(context.Context) (*lab.Lab, error)
	down       func() error
	privileges func() error
}

func (o *demoOptions) addNodesFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 1, "1: pods on one node; 2: pod1 on nodeA, pod2 on nodeB, traced across the overlay on both nodes")
	f.TextVar(&o.lab.Backend, "backend", lab.BackendVXLAN, "with --nodes 2: vxlan, host-gw, ipip, udp, geneve or ipsec (see 'pathtrace lab up --help')")
	f.TextVar(&o.lab.CNI, "cni", lab.CNIFlannel, "with --nodes 2: flannel (cni0) or calico (cali* veths, routed)")
	cmd.PreRunE = func(c *cobra.Command, _ []string) error {
		switch {
		case o.Nodes != 1 && o.Nodes != 2:
			return usageError(fmt.Errorf("--nodes %d: 1 or 2", o.Nodes))
		case o.Nodes == 1 && (c.Flags().Changed("backend") || c.Flags().Changed("cni")):
			return usageError(errors.New("--backend and --cni need --nodes 2"))
		case o.Nodes == 2 && c.Flags().Changed("subnet"):
			return usageError(errors.New("--subnet applies to the one-node demo, not with --nodes 2"))
		}
		if o.lab.CNI == lab.CNICalico && !c.Flags().Changed("backend") {
			o.lab.Backend = lab.BackendIPIP // Calico's default
		}
		return nil
	}
}

func (o *demoOptions) demoLab() (*demoLab, error) {
	none := func() error { return nil }
	if o.Nodes == 2 {
		cfg := lab.NodesConfig{Prefix: o.lab.Prefix, Backend: o.lab.Backend, CNI: o.lab.CNI}
		priv := none
		if cfg.Backend.RawSockets() {
			priv = checkLabRawPrivileges
		}
		return &demoLab{prefix: cfg.Prefix, privileges: priv,
			taken: func() error { return lab.TakenNodes(cfg) },
			up:    func(ctx context.Context) (*lab.Lab, error) { return lab.UpNodesNew(ctx, cfg) },
			down:  func() error { return lab.Down(lab.Config{Prefix: cfg.Prefix}) },
		}, nil
	}
	cfg, err := o.lab.config()
	if err != nil {
		return nil, err
	}
	return &demoLab{prefix: cfg.Prefix, privileges: none,
		taken: func() error { return lab.Taken(cfg) },
		up:    func(ctx context.Context) (*lab.Lab, error) { return lab.UpNew(ctx, cfg) },
		down:  func() error { return lab.Down(cfg) },
	}, nil
}
