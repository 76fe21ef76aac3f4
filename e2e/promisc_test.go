package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// On a node that rewrites destinations in prerouting (kube-proxy's DNAT)
// with bridge-netfilter on, a promiscuous bridge makes the node deliver the
// rewritten frames twice. The test shows that on this kernel (what a
// promiscuous capture of cni0 would do to the pods' Service traffic), then
// that pathtrace's run leaves cni0 as it is and still traces the bridged
// path without gaps, saying why cni0 sees less.
func TestBridgeNotPromiscWithDNAT(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft", "ping", "tcpdump")
	l := e2eUp(t, uniqueLab(t, "pm", 70))
	keepRulesets(t, l)
	ctx := traceCtx(t)
	p1, p2 := l.Pods[0], l.Pods[1]
	if b, err := inNetns(ctx, l.Node, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").Output(); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("bridge-nf-call-iptables in the node: %q, %v (this kernel has br_netfilter built in)", b, err)
	}
	// A Service address, DNATed to pod2 as kube-proxy does, on a node that
	// forwards (as every Kubernetes node does).
	old, err := inNetns(ctx, l.Node, "sysctl", "-n", "net.ipv4.ip_forward").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "exec", l.Node, "sysctl", "-w", "net.ipv4.ip_forward="+strings.TrimSpace(string(old))).Run()
	})
	mustRun(t, inNetns(ctx, l.Node, "sysctl", "-w", "net.ipv4.ip_forward=1"))
	svc := "10.96.77.10"
	nftTable(t, ctx, l.Node, "ip", "svc", fmt.Sprintf(" chain pre {\n  type nat hook prerouting priority -100;\n  ip daddr %s dnat to %s\n }", svc, p2.IP))

	// copies counts the echo requests pod2 receives for n pings from pod1
	// to the Service address.
	copies := func(n int) int {
		t.Helper()
		dir := t.TempDir()
		tds := startTcpdumpFilter(t, dir, []pointSpec{{Name: "pod2", Netns: p2.Name, Ifname: "eth0"}}, "icmp[icmptype] = icmp-echo")
		inNetns(ctx, p1.Name, "ping", "-c", fmt.Sprint(n), "-i", "0.2", "-W", "1", svc).Run()
		time.Sleep(200 * time.Millisecond)
		stopTcpdump(t, tds)
		out, err := exec.Command("tcpdump", "-n", "-r", filepath.Join(dir, "pod2.tcpdump.pcap")).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(out), "ICMP echo request")
	}
	if got := copies(3); got != 3 {
		t.Fatalf("without pathtrace pod2 got %d echo requests for 3 pings to the Service address, want 3", got)
	}
	mustRun(t, inNetns(ctx, l.Node, "ip", "link", "set", "cni0", "promisc", "on"))
	doubled := copies(3)
	mustRun(t, inNetns(ctx, l.Node, "ip", "link", "set", "cni0", "promisc", "off"))
	if doubled != 6 {
		t.Fatalf("with cni0 promiscuous pod2 got %d echo requests for 3 pings, want 6: the hazard this test guards against is not there", doubled)
	}

	// A passive run while the pings go on: pod2 still gets each once.
	run := startTrace(t, ctx, "--src", p1.Name, "--dst", p2.Name, "--passive", "--duration", "3s", "-f", "json")
	time.Sleep(time.Second)
	during := copies(3)
	r := run()
	if during != 3 {
		t.Errorf("during pathtrace's run pod2 got %d echo requests for 3 pings, want 3", during)
	}
	if r.Doc == nil {
		t.Fatalf("exit %d\n%s", r.Code, r.describe())
	}
	i := slices.IndexFunc(r.Doc.Discovery.Points, func(p discover.Point) bool { return p.Name == "cni0" })
	if i < 0 || r.Doc.Discovery.Points[i].Promisc {
		t.Errorf("cni0 in discovery (%d): want it captured without promiscuous mode", i)
	}

	// The probes' own bridged path: complete, no gap at cni0, and said why.
	pr := runTrace(t, ctx, "--src", p1.Name, "--dst", p2.Name, "-c", "3", "-i", "50ms", "-f", "json")
	if pr.Code != exitOK || pr.Doc == nil {
		t.Fatalf("probes: exit %d\n%s", pr.Code, pr.describe())
	}
	if !slices.ContainsFunc(pr.Doc.Warnings, func(w string) bool {
		return strings.Contains(w, "cni0 captured without promiscuous mode") && strings.Contains(w, "svc pre")
	}) {
		t.Errorf("no note on cni0's mode: %q", pr.Doc.Warnings)
	}
	for _, tr := range pr.Doc.Traces {
		if len(tr.Missing) > 0 || tr.LostAfter != "" {
			t.Errorf("trace %s: missing %v, lost after %q", &tr, tr.Missing, tr.LostAfter)
		}
	}
	if got := r.Doc.Discovery.Points; len(got) != 5 {
		t.Errorf("%d points, want 5", len(got))
	}
}
