package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/netns"
)

// An eBPF redirect as Cilium does it: a tc (tcx) ingress program on pod2's
// host veth sends everything pod2 sends straight into pod1 with
// bpf_redirect_peer, past cni0 and pod1's host veth. Those two points see
// every request and none of the replies: the report says they were
// bypassed, not that frames went missing.
func TestTraceBypassedByRedirect(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	p1, p2 := l.Pods[0], l.Pods[1]
	node, err := netns.Open(l.NodePath)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	// With pod2's frames redirected past cni0 the bridge never learns its
	// MAC and floods the requests (hairpin sends them back to pod1): the
	// test would hang on whether pod2 happened to send something through
	// cni0 before. A static entry, as the bridge would have learnt it.
	mustRun(t, inNetns(traceCtx(t), l.Node, "bridge", "fdb", "replace", p2.MAC, "dev", p2.HostVeth, "master", "static"))
	from, err := linkIn(l.NodePath, p2.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	to, err := linkIn(l.NodePath, p1.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(to.Attrs().Index)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirectPeer.Call(), // TC_ACT_REDIRECT into pod1's eth0
			asm.Return(),
		},
	})
	if err != nil {
		testenv.SkipOrFail(t, "load a tc program: %v", err)
	}
	defer prog.Close()
	var lk link.Link
	if err := netns.Do(node, func() (err error) {
		lk, err = link.AttachTCX(link.TCXOptions{Interface: from.Attrs().Index, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	}); err != nil {
		testenv.SkipOrFail(t, "attach tcx ingress to %s: %v", p2.HostVeth, err)
	}
	defer lk.Close()

	r := runTrace(t, traceCtx(t), "--src", p1.Name, "--dst", p2.Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0 (a bypass is by design)\n%s", r.Code, r.describe())
	}
	d := r.Doc
	path := specNames(labPath(l, p1, p2))
	for _, tr := range d.ofType("echo-request") {
		if got := tr.points(); !slices.Equal(got, path) {
			t.Errorf("request %s: hops %v, want %v", tr, got, path)
		}
	}
	reps := d.ofType("echo-reply")
	if len(reps) != 3 {
		t.Fatalf("%d replies, want 3", len(reps))
	}
	for _, tr := range reps {
		if got := tr.points(); !slices.Equal(got, []string{p2.Name, p2.Name + "-veth", p1.Name}) {
			t.Errorf("reply %s: hops %v, want pod2, its veth, pod1", tr, got)
		}
	}
	for _, pt := range []string{"cni0", p1.Name + "-veth"} {
		a := d.anomaly("bypass", pt)
		if a == nil || a.Severity != "info" || !strings.Contains(a.Message, "bypassed") {
			t.Errorf("no bypass finding at %s: %+v", pt, d.Anomalies)
		}
		if g := d.anomaly("gap", pt); g != nil {
			t.Errorf("gap at %s besides the bypass: %+v", pt, g)
		}
	}
	if s := d.Summary; !s.Clean || s.WithGaps != 0 || !strings.Contains(s.Verdict, "bypassed") {
		t.Errorf("summary %+v", s)
	}
	t.Log(fmt.Sprint("verdict: ", d.Summary.Verdict))
}
