package kdrop

import (
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
)

// Reason names come from this kernel's BTF: the reasons the tests rely on
// are there, under their names, and the markers are not counted.
func TestReasonsFromKernel(t *testing.T) {
	nstest.RequireRoot(t)
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReasonsFromBTF(spec)
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, v := range e.Values {
		names[r.Name(Reason(v.Value))] = true
	}
	for _, want := range []string{"NETFILTER_DROP", "NEIGH_FAILED", "IP_RPFILTER", "PKT_TOO_BIG", "NOT_SPECIFIED", "NO_SOCKET"} {
		if !names[want] {
			t.Errorf("reason %s missing", want)
		}
	}
	// 4 markers: NOT_DROPPED_YET, CONSUMED, MAX, SUBSYS_MASK.
	if r.Len() != len(e.Values)-4 {
		t.Errorf("Len %d, enum has %d values", r.Len(), len(e.Values))
	}
	t.Logf("this kernel lists %d drop reasons", r.Len())
	if got := r.Name(Reason(2<<16 | 5)); got != "OPENVSWITCH:0x5" {
		t.Errorf("openvswitch subsystem reason named %q", got)
	}
	if got := r.Name(Reason(60000)); got != "reason 60000" {
		t.Errorf("unknown reason named %q", got)
	}
}
