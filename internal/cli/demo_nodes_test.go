package cli

import (
	"context"
	"testing"

	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/lab"
)

// demo --nodes 2 takes the two-node lab's backend and CNI; they mean
// nothing to the one-node demo, which refuses them.
func TestDemoNodesFlags(t *testing.T) {
	run := func(args ...string) (*demoOptions, error) {
		ios, _, _, _ := iostreams.Test()
		var got *demoOptions
		err := execute(t, newDemoCmd(ios, func(_ context.Context, o *demoOptions) error { got = o; return nil }), args...)
		return got, err
	}
	for _, c := range []struct {
		args    []string
		backend lab.Backend
		cni     lab.CNI
	}{
		{[]string{"--nodes", "2"}, lab.BackendVXLAN, lab.CNIFlannel},
		{[]string{"--nodes", "2", "--backend", "ipip"}, lab.BackendIPIP, lab.CNIFlannel},
		{[]string{"--nodes", "2", "--cni", "calico"}, lab.BackendIPIP, lab.CNICalico},
		{[]string{"--nodes", "2", "--cni", "calico", "--backend", "host-gw"}, lab.BackendHostGW, lab.CNICalico},
	} {
		o, err := run(c.args...)
		if err != nil || o == nil || o.Nodes != 2 || o.lab.Backend != c.backend || o.lab.CNI != c.cni {
			t.Errorf("%v: %+v, %v; want backend %v, cni %v", c.args, o, err, c.backend, c.cni)
			continue
		}
		if dl, err := o.demoLab(); err != nil || dl.prefix != DemoPrefix {
			t.Errorf("%v: demo lab %+v, %v", c.args, dl, err)
		}
	}
	for _, args := range [][]string{{"--backend", "ipip"}, {"--cni", "calico"}, {"--nodes", "3"}, {"--nodes", "2", "--subnet", "10.9.9.0/24"},
		{"--nodes", "2", "--backend", "nosuch"}} {
		if _, err := run(args...); err == nil {
			t.Errorf("%v: accepted, want an error", args)
		}
	}
}
