package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// Why a probe was lost: each scenario breaks the path one way on a node
// wired by the real CNI bridge plugin (or, for a routed path, the lab's
// routed node), traces, and checks what this kernel says on the lost
// traces — reason, location, namespace, device and, for netfilter, the
// rule as `nft -a -s list` prints it — and that nothing else carries a
// drop.

type whyCase struct {
	name  string
	setup func(t *testing.T, ctx context.Context, l *lab.Lab)
	dst   func(l *lab.Lab) string
	args  []string
	// what the requests look like: lost after a point, reached the
	// destination unanswered, or seen nowhere (hops: [])
	lostAfter func(l *lab.Lab) string
	unseen    bool
	reason    string
	symbol    string
	netns     func(l *lab.Lab) string
	iface     func(l *lab.Lab) string
	// rule: the nft chain whose only rule drops them
	rule func(l *lab.Lab) (ns, family, table, chain string)
}

func podName(i int) func(*lab.Lab) string { return func(l *lab.Lab) string { return l.Pods[i].Name } }
func nodeName(l *lab.Lab) string          { return l.Node }
func fixed(s string) func(*lab.Lab) string {
	return func(*lab.Lab) string { return s }
}

// nft applies a rule set in a namespace; its table is deleted at cleanup.
func nftTable(t *testing.T, ctx context.Context, ns, family, table, body string) {
	t.Helper()
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", family, table).Run() })
	cmd := inNetns(ctx, ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table %s %s {\n%s\n}\n", family, table, body))
	mustRun(t, cmd)
}

const bridgeGuard = " chain forward {\n  type filter hook forward priority 0;\n  icmp type echo-request counter drop\n }"

// guardedLab is a lab whose bridge drops echo requests (table bridge
// guard); its rulesets are checked at the end.
func guardedLab(t *testing.T, tag string) (*lab.Lab, context.Context) {
	l := e2eUp(t, uniqueLab(t, tag, 70))
	keepRulesets(t, l)
	ctx := traceCtx(t)
	nftTable(t, ctx, l.Node, "bridge", "guard", bridgeGuard)
	return l, ctx
}

func whyCases() []whyCase {
	return []whyCase{{
		name: "bridge forward hook",
		setup: func(t *testing.T, ctx context.Context, l *lab.Lab) {
			nftTable(t, ctx, l.Node, "bridge", "guard", bridgeGuard)
		},
		dst: podName(1), lostAfter: fixed("cni0"),
		reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: nodeName,
		iface: func(l *lab.Lab) string { return l.Pods[1].HostVeth }, // the bridge's output port
		rule:  func(l *lab.Lab) (string, string, string, string) { return l.Node, "bridge", "guard", "forward" },
	}, {
		name: "destination input hook",
		setup: func(t *testing.T, ctx context.Context, l *lab.Lab) {
			nftTable(t, ctx, l.Pods[1].Name, "inet", "guard",
				" chain input {\n  type filter hook input priority 0;\n  icmp type echo-request counter drop\n }")
		},
		dst: podName(1), reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: podName(1), iface: fixed("eth0"),
		rule: func(l *lab.Lab) (string, string, string, string) { return l.Pods[1].Name, "inet", "guard", "input" },
	}, {
		name: "iptables-nft",
		setup: func(t *testing.T, ctx context.Context, l *lab.Lab) {
			ns := l.Pods[1].Name
			t.Cleanup(func() { exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "filter").Run() })
			mustRun(t, inNetns(ctx, ns, "iptables-nft", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"))
		},
		dst: podName(1), reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: podName(1), iface: fixed("eth0"),
		rule: func(l *lab.Lab) (string, string, string, string) { return l.Pods[1].Name, "ip", "filter", "INPUT" },
	}, {
		name:  "destination nobody holds",
		setup: func(*testing.T, context.Context, *lab.Lab) {},
		dst: func(l *lab.Lab) string {
			a := l.Pods[0].IP.As4()
			return netip.AddrFrom4([4]byte{a[0], a[1], a[2], 213}).String()
		},
		// Queued behind the ARP request nobody answers, the probes never
		// leave pod1; they die when the neighbour entry fails (~3 s).
		unseen: true, reason: "NEIGH_FAILED", symbol: "neigh_invalidate", netns: podName(0), iface: fixed("eth0"),
	}, {
		name: "veth peer MTU",
		setup: func(t *testing.T, ctx context.Context, l *lab.Lab) {
			// pod1's eth0 takes 9000 bytes, its host-side peer 1450: the
			// veth cannot hand a 2028-byte probe over.
			ns := l.Pods[0].Name
			t.Cleanup(func() { exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "mtu", "1450").Run() })
			mustRun(t, inNetns(ctx, ns, "ip", "link", "set", "eth0", "mtu", "9000"))
		},
		dst: podName(1), args: []string{"--size", "2000"}, lostAfter: podName(0),
		// This kernel names no reason here; the device is the sending end.
		reason: "NOT_SPECIFIED", symbol: "__dev_forward_skb2", netns: podName(0), iface: fixed("eth0"),
	}}
}

func TestWhyDropped(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft", "iptables-nft", "ping", "socat")
	l := cniUp(t, uniqueLab(t, "wy", 70), 3)
	keepRulesets(t, l)
	ctx := traceCtx(t)

	// A clean path first: answered probes carry no drop.
	r := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "3", "-i", "50ms", "-f", "json")
	if r.Code != 0 || r.Doc == nil {
		t.Fatalf("clean path: exit %d\n%s", r.Code, r.describe())
	}
	checkNoDropsOn(t, r.Doc, func(*jTrace) bool { return true })
	checkNoTraceTables(t, l)

	for _, c := range whyCases() {
		t.Run(c.name, func(t *testing.T) {
			c.setup(t, ctx, l)
			dst := c.dst(l)
			args := append([]string{"--src", l.Pods[0].Name, "--dst", dst, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json"}, c.args...)
			start := time.Now()
			run := startTrace(t, ctx, args...)
			// The user's own traffic over the same path meanwhile, dropped
			// by the same rule: its drops are no probe's.
			if c.name == "bridge forward hook" {
				inNetns(ctx, l.Pods[0].Name, "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo x | socat - UDP:"+l.Pods[1].IP.String()+":9; sleep 0.1; done").Start()
				inNetns(ctx, l.Pods[0].Name, "ping", "-c", "15", "-i", "0.1", "-W", "1", l.Pods[1].IP.String()).Run()
			}
			r := run()
			checkNoTraceTables(t, l)
			if r.Code != exitFindings || r.Doc == nil {
				t.Fatalf("exit %d, want %d\n%s", r.Code, exitFindings, r.describe())
			}
			d := r.Doc
			if d.Live == nil || d.Live.EchoID == nil {
				t.Fatalf("no live.echo_id\n%s", r.describe())
			}
			var ours []*jTrace
			for i := range d.Traces {
				tr := &d.Traces[i]
				if tr.Type == "echo-request" && tr.ID != nil && *tr.ID == *d.Live.EchoID {
					ours = append(ours, tr)
				}
			}
			if len(ours) != 3 {
				t.Fatalf("%d probe traces, want 3\n%s", len(ours), r.describe())
			}
			wantRule := ""
			if c.rule != nil {
				ns, fam, table, chain := c.rule(l)
				wantRule = listedRule(t, ctx, ns, fam, table, chain)
			}
			for _, tr := range ours {
				checkShape(t, c, l, tr)
				dr := tr.Drop
				if dr == nil {
					t.Errorf("trace %s: no drop\n%s", tr, r.describe())
					continue
				}
				if dr.Reason != c.reason || !strings.HasPrefix(dr.Location, c.symbol+"+0x") || dr.Netns != c.netns(l) || dr.Interface != c.iface(l) {
					t.Errorf("trace %s: drop %+v, want %s at %s+0x.. in %s on %s", tr, *dr, c.reason, c.symbol, c.netns(l), c.iface(l))
				}
				if dr.Rule != wantRule {
					t.Errorf("trace %s: rule %q, want %q", tr, dr.Rule, wantRule)
				}
				at, err := time.Parse(time.RFC3339Nano, dr.Time)
				if err != nil || at.Before(start) || at.After(time.Now()) {
					t.Errorf("trace %s: drop time %q outside the run", tr, dr.Time)
				}
			}
			// Nothing else carries a drop: replies, ARP, the user's pings
			// and UDP.
			checkNoDropsOn(t, d, func(tr *jTrace) bool { return !slices.Contains(ours, tr) })
			if !strings.Contains(d.Summary.Verdict, "dropped by the kernel: "+c.reason+" ×3 in "+c.netns(l)) {
				t.Errorf("verdict %q does not say why", d.Summary.Verdict)
			}
			if c.name == "bridge forward hook" {
				user := 0
				for i := range d.Traces {
					if tr := &d.Traces[i]; tr.Type == "echo-request" && !slices.Contains(ours, tr) {
						user++
					}
				}
				if user == 0 {
					t.Errorf("the user's pings were not traced: the unrelated-drop check checked nothing")
				}
			}
		})
	}
}

// checkShape: how far the lost requests got.
func checkShape(t *testing.T, c whyCase, l *lab.Lab, tr *jTrace) {
	t.Helper()
	switch {
	case c.unseen:
		if len(tr.Hops) != 0 || !slices.Contains(tr.Flags, "lost") || tr.LostAfter != "" {
			t.Errorf("trace %s: hops %v flags %v lost_after %q, want no hops and lost", tr, tr.points(), tr.Flags, tr.LostAfter)
		}
	case c.lostAfter != nil:
		if tr.LostAfter != c.lostAfter(l) {
			t.Errorf("trace %s: lost_after %q, want %q", tr, tr.LostAfter, c.lostAfter(l))
		}
	default: // reached the destination and died there
		if tr.LostAfter != "" || len(tr.Hops) == 0 || tr.Hops[len(tr.Hops)-1].Point != l.Pods[1].Name {
			t.Errorf("trace %s: hops %v lost_after %q, want it to reach %s", tr, tr.points(), tr.LostAfter, l.Pods[1].Name)
		}
	}
}

func checkNoDropsOn(t *testing.T, d *liveDoc, which func(*jTrace) bool) {
	t.Helper()
	for i := range d.Traces {
		if tr := &d.Traces[i]; which(tr) && tr.Drop != nil {
			t.Errorf("trace %s (%s) carries a drop: %+v", tr, tr.Type, *tr.Drop)
		}
	}
}

// listedRule is the chain's only rule as nft lists it (stateless, with
// handles): "<family> <table> <chain> handle <N>: <rule>".
func listedRule(t *testing.T, ctx context.Context, ns, family, table, chain string) string {
	t.Helper()
	out := mustRun(t, inNetns(ctx, ns, "nft", "-a", "-s", "list", "chain", family, table, chain))
	re := regexp.MustCompile(`^\s+(.*\S)\s+# handle (\d+)$`)
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil && !strings.HasPrefix(strings.TrimSpace(line), "chain ") {
			return fmt.Sprintf("%s %s %s handle %s: %s", family, table, chain, m[2], m[1])
		}
	}
	t.Fatalf("no rule in %s %s %s:\n%s", family, table, chain, out)
	return ""
}

// keepRulesets: every namespace of the lab has the same ruleset at the
// end as before the test.
func keepRulesets(t *testing.T, l *lab.Lab) {
	t.Helper()
	nss := labNamespaces(l)
	before := map[string]string{}
	for _, ns := range nss {
		b, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list ruleset in %s: %v\n%s", ns, err, b)
		}
		before[ns] = string(b)
	}
	t.Cleanup(func() {
		for _, ns := range nss {
			after, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
			if string(after) != before[ns] {
				t.Errorf("ruleset of %s changed:\nbefore:\n%s\nafter:\n%s", ns, before[ns], after)
			}
		}
	})
}

func labNamespaces(l *lab.Lab) []string {
	nss := []string{l.Node}
	for _, p := range l.Pods {
		nss = append(nss, p.Name)
	}
	return nss
}

// checkNoTraceTables: no pathtrace table is left in any namespace.
func checkNoTraceTables(t *testing.T, l *lab.Lab) {
	t.Helper()
	for _, ns := range labNamespaces(l) {
		out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput()
		if strings.Contains(string(out), "pathtrace_") {
			t.Errorf("netns %s still has a trace table:\n%s", ns, out)
		}
	}
}

// A strict reverse-path filter on a routed node: pod1 sends from an
// address the node routes elsewhere (cni1), and the node refuses it on
// cni0.
func TestWhyRPFilter(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft")
	cfg := uniqueLab(t, "wr", 70)
	cfg.Routed = true
	l := e2eUp(t, cfg)
	keepRulesets(t, l)
	ctx := traceCtx(t)
	p1, p3 := l.Pods[0], l.Pods[len(l.Pods)-1]
	gw := l.Pods[0].IP.As4()
	gw[3] = 1
	spoof := netip.AddrFrom4([4]byte{gw[0], gw[1], gw[2] + 1, 250})
	mac := strings.TrimSpace(mustRun(t, inNetns(ctx, l.Node, "cat", "/sys/class/net/cni0/address")))
	undo := func(ns string, argv ...string) {
		t.Cleanup(func() { exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).Run() })
	}
	// A permanent gateway neighbour: the node answers no ARP request from
	// the spoofed source either (rp_filter).
	undo(p1.Name, "ip", "neigh", "del", netip.AddrFrom4(gw).String(), "dev", "eth0")
	mustRun(t, inNetns(ctx, p1.Name, "ip", "neigh", "replace", netip.AddrFrom4(gw).String(), "lladdr", mac, "dev", "eth0", "nud", "permanent"))
	undo(p1.Name, "ip", "addr", "del", spoof.String()+"/32", "dev", "eth0")
	mustRun(t, inNetns(ctx, p1.Name, "ip", "addr", "add", spoof.String()+"/32", "dev", "eth0"))
	undo(p1.Name, "ip", "route", "del", p3.IP.String()+"/32")
	mustRun(t, inNetns(ctx, p1.Name, "ip", "route", "add", p3.IP.String()+"/32", "via", netip.AddrFrom4(gw).String(), "src", spoof.String()))
	undo(l.Node, "ip", "route", "del", spoof.String()+"/32")
	mustRun(t, inNetns(ctx, l.Node, "ip", "route", "add", spoof.String()+"/32", "dev", "cni1"))
	for _, k := range []string{"all", "cni0"} {
		key := "net.ipv4.conf." + k + ".rp_filter"
		old := strings.TrimSpace(mustRun(t, inNetns(ctx, l.Node, "sysctl", "-n", key)))
		undo(l.Node, "sysctl", "-w", key+"="+old)
		mustRun(t, inNetns(ctx, l.Node, "sysctl", "-w", key+"=1"))
	}

	r := runTrace(t, ctx, "--src", p1.Name, "--dst", p3.Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	checkNoTraceTables(t, l)
	if r.Code != exitFindings || r.Doc == nil {
		t.Fatalf("exit %d\n%s", r.Code, r.describe())
	}
	n := 0
	for i := range r.Doc.Traces {
		tr := &r.Doc.Traces[i]
		if tr.Type != "echo-request" {
			continue
		}
		n++
		if tr.LostAfter != "cni0" {
			t.Errorf("trace %s: lost_after %q, want cni0", tr, tr.LostAfter)
		}
		if d := tr.Drop; d == nil || d.Reason != "IP_RPFILTER" || !strings.HasPrefix(d.Location, "ip_rcv_finish_core+0x") ||
			d.Netns != l.Node || d.Interface != "cni0" || d.Rule != "" {
			t.Errorf("trace %s: drop %+v, want IP_RPFILTER at ip_rcv_finish_core in %s on cni0", tr, d, l.Node)
		}
	}
	if n != 3 {
		t.Errorf("%d echo requests, want 3\n%s", n, r.describe())
	}
}

// A passive run with --why: the user's own pings, dropped in the bridge,
// carry the reason and the rule; without --why a passive run asks nothing.
func TestWhyPassive(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft", "ping")
	l, ctx := guardedLab(t, "wp")
	wantRule := listedRule(t, ctx, l.Node, "bridge", "guard", "forward")
	for _, why := range []bool{true, false} {
		args := []string{"--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "--passive", "--duration", "2500ms", "-f", "json"}
		if why {
			args = append(args, "--why")
		}
		run := startTrace(t, ctx, args...)
		time.Sleep(time.Second) // armed
		inNetns(ctx, l.Pods[0].Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", l.Pods[1].IP.String()).Run()
		r := run()
		checkNoTraceTables(t, l)
		if r.Code != exitFindings || r.Doc == nil {
			t.Fatalf("--why=%v: exit %d\n%s", why, r.Code, r.describe())
		}
		reqs := r.Doc.ofType("echo-request")
		if len(reqs) != 3 {
			t.Fatalf("--why=%v: %d echo requests, want 3\n%s", why, len(reqs), r.describe())
		}
		for _, tr := range reqs {
			switch {
			case !why && tr.Drop != nil:
				t.Errorf("without --why: trace %s carries a drop", tr)
			case why && (tr.Drop == nil || tr.Drop.Reason != "NETFILTER_DROP" || tr.Drop.Rule != wantRule):
				t.Errorf("--why: trace %s: drop %+v, want NETFILTER_DROP by %q", tr, tr.Drop, wantRule)
			}
		}
	}
}

// The evidence carries the drops: analyze of the folder shows what the
// live run said, and Wireshark sees them as capture file comments.
func TestWhyEvidence(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft", "capinfos")
	l, ctx := guardedLab(t, "we")
	dir := filepath.Join(t.TempDir(), "ev")
	live := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "2", "-i", "50ms", "--timeout", "300ms", "-o", dir, "-f", "json")
	if live.Code != exitFindings || live.Doc == nil {
		t.Fatalf("live: exit %d\n%s", live.Code, live.describe())
	}
	off := runTrace(t, ctx, "analyze", dir, "-f", "json")
	if off.Code != exitFindings || off.Doc == nil {
		t.Fatalf("analyze: exit %d\n%s", off.Code, off.describe())
	}
	lr, or := live.Doc.ofType("echo-request"), off.Doc.ofType("echo-request")
	if len(lr) != 2 || len(or) != 2 {
		t.Fatalf("%d live and %d offline echo requests, want 2 each", len(lr), len(or))
	}
	for i := range lr {
		if lr[i].Drop == nil || or[i].Drop == nil || *lr[i].Drop != *or[i].Drop {
			t.Errorf("trace %s: live drop %+v, offline %+v", lr[i], lr[i].Drop, or[i].Drop)
		}
	}
	if !strings.Contains(off.Doc.Summary.Verdict, "dropped by the kernel: NETFILTER_DROP ×2") {
		t.Errorf("offline verdict %q", off.Doc.Summary.Verdict)
	}
	out := mustRun(t, exec.CommandContext(ctx, "capinfos", filepath.Join(dir, "path.pcapng")))
	if c := strings.Count(out, "pathtrace drop: {"); c != 2 {
		t.Errorf("capinfos shows %d drop comments, want 2:\n%s", c, out)
	}
}

// A run killed by SIGKILL leaves no trace table: the kernel removes the
// tables its socket owned. A table of a dead run that was not owned (an
// older kernel) is removed by the next run, which says so; a live run's
// table is never touched.
func TestWhyKilled(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft")
	l := e2eUp(t, uniqueLab(t, "wk", 70))
	keepRulesets(t, l)
	bin := ptBinary(t)
	ctx := traceCtx(t)
	cmd := exec.CommandContext(ctx, bin, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "100", "-i", "100ms", "-q")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("pathtrace_%d_", cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "exec", l.Node, "nft", "list", "tables").CombinedOutput()
		if strings.Contains(string(out), table) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no table %s* in %s after 10 s:\n%s", table, l.Node, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	checkNoTraceTables(t, l)

	// A dead run's table that the kernel does not remove by itself.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := "pathtrace_" + strconv.Itoa(dead.Process.Pid) + "_1"
	mustRun(t, inNetns(ctx, l.Node, "nft", "add", "table", "inet", stale))
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", l.Node, "nft", "delete", "table", "inet", stale).Run() })
	r := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "1", "-f", "json")
	if r.Code != 0 || r.Doc == nil {
		t.Fatalf("exit %d\n%s", r.Code, r.describe())
	}
	checkNoTraceTables(t, l)
	note := fmt.Sprintf("removed nft table inet %s left in netns %s by a run that was killed", stale, l.Node)
	if !slices.Contains(r.Doc.Warnings, note) {
		t.Errorf("warnings %q, want %q", r.Doc.Warnings, note)
	}
}
