package nftrace

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
	"github.com/pathtrace/pathtrace/netns"
)

// TestMain doubles as the child process of TestStaleTables: with
// PTD_NFTRACE_CHILD=<netns path> it opens a tracer there, prints its table
// name and waits to be killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("PTD_NFTRACE_CHILD"); path != "" {
		ownerTables = os.Getenv("PTD_NFTRACE_OWNER") == "1"
		h, err := netns.Open(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		tr, err := Open(h, Match{EchoID: 1, Payload: []byte("ptdchild")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(tr.Table(), tr.Owned())
		select {}
	}
	os.Exit(m.Run())
}

type traceScenario struct {
	name   string
	ns     func(l *nstest.Lab) string // where the rule is
	setup  func(t *testing.T, ns string)
	table  string // the dropping rule's table, chain and family
	chain  string
	family string
	policy bool
}

func TestTraceDrops(t *testing.T) {
	nstest.RequireRoot(t)
	l := nstest.UpLab(t, "ptdn", 252)
	nstest.KeepRulesets(t, l.Namespaces()...)

	tag := make([]byte, 46)
	copy(tag, "ptdnftrace")
	rand.Read(tag[10:16])
	id := binary.BigEndian.Uint16(tag[10:])
	m := Match{EchoID: id, Payload: tag[:MaxPayload]}

	// A tracer in every namespace on the path, as a run has.
	tracers := map[string]*Tracer{}
	for _, n := range l.Namespaces() {
		h, err := netns.Open("/run/netns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		tr, err := Open(h, m)
		if err != nil {
			t.Fatalf("tracer in %s: %v", n, err)
		}
		t.Cleanup(func() {
			if err := tr.Close(); err != nil {
				t.Errorf("close tracer in %s: %v", n, err)
			}
		})
		if !tr.Owned() {
			t.Errorf("tracer table in %s is not owned by its socket", n)
		}
		tracers[n] = tr
	}

	pod2 := func(l *nstest.Lab) string { return l.Pods[1].Name }
	scenarios := []traceScenario{{
		name: "bridge forward hook", ns: func(l *nstest.Lab) string { return l.Node },
		setup: func(t *testing.T, ns string) {
			nstest.Nft(t, ns, "table bridge ptdguard {\n chain forward {\n  type filter hook forward priority 0;\n  icmp type echo-request counter drop\n }\n}\n")
		},
		family: "bridge", table: "ptdguard", chain: "forward",
	}, {
		name: "destination input hook", ns: pod2,
		setup: func(t *testing.T, ns string) {
			nstest.Nft(t, ns, "table inet ptdguard {\n chain input {\n  type filter hook input priority 0;\n  ip saddr 10.0.0.0/8 icmp type echo-request counter drop comment \"ptd probe drop\"\n }\n}\n")
		},
		family: "inet", table: "ptdguard", chain: "input",
	}, {
		name: "iptables-nft", ns: pod2,
		setup: func(t *testing.T, ns string) {
			nstest.Iptables(t, ns, "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-m", "comment", "--comment", "ptd guard", "-j", "DROP")
		},
		family: "ip", table: "filter", chain: "INPUT",
	}, {
		name: "chain policy", ns: pod2,
		setup: func(t *testing.T, ns string) {
			nstest.Nft(t, ns, "table ip ptdpolicy {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n")
		},
		family: "ip", table: "ptdpolicy", chain: "input", policy: true,
	}}
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ns := sc.ns(l)
			sc.setup(t, ns)
			want := fmt.Sprintf("%s %s %s policy drop", sc.family, sc.table, sc.chain)
			if !sc.policy {
				want = expectedRule(t, ns, sc.family, sc.table, sc.chain)
			}
			src, dst := l.Pods[0], l.Pods[1].IP
			// The user's own ping over the same path, dropped by the same
			// rule, is not traced: no event may be about it.
			go nstest.ShErr(src.Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", dst.String())
			first := uint16(100 * (i + 1))
			nstest.SendProbes(t, src.Netns, dst, id, tag, first, 3)
			drops := map[uint16]Event{}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for len(drops) < 3 {
				ev, err := tracers[ns].Read(ctx)
				if err != nil {
					t.Fatalf("read traces in %s: %v (have %d drops)", ns, err, len(drops))
				}
				seq, ok := probeSeq(ev, id, tag[:MaxPayload])
				if !ok {
					t.Errorf("trace of a packet that is not a probe: %+v", ev)
					continue
				}
				t.Logf("trace %s %s %s %s handle %d verdict %s seq %d iif %d oif %d: %s", ev.Type, ev.Family, ev.Table, ev.Chain, ev.Handle, ev.Verdict, seq, ev.Iif, ev.Oif, ev.Rule)
				if ev.Dropped() && seq >= first && seq < first+3 {
					drops[seq] = ev
				}
			}
			for seq, ev := range drops {
				if ev.Rule != want || ev.RuleErr != nil {
					t.Errorf("seq %d: rule %q (%v), want %q", seq, ev.Rule, ev.RuleErr, want)
				}
				if ev.Iif == 0 && ev.Oif == 0 {
					t.Errorf("seq %d: no interface in the trace", seq)
				}
			}
			// The other namespaces' tracers saw the probes pass, no drop.
			for n, tr := range tracers {
				if n == ns {
					continue
				}
				drainNoDrop(t, n, tr)
			}
		})
	}
}

// expectedRule is the dropping rule as nft lists it (the only rule of the
// chain), in the tracer's format.
func expectedRule(t *testing.T, ns, family, table, chain string) string {
	t.Helper()
	listing := nstest.Sh(t, ns, "nft", "-a", "-s", "list", "table", family, table)
	for _, r := range parseListing(listing) {
		if r.chain == chain {
			text := r.text
			if table == "filter" {
				// nft's xtables translation omits the comment.
				text += ` comment "ptd guard"`
			}
			return fmt.Sprintf("%s %s %s handle %d: %s", family, table, chain, r.handle, text)
		}
	}
	t.Fatalf("no rule in %s %s %s:\n%s", family, table, chain, listing)
	return ""
}

// probeSeq: the event's packet is one of the probes (ICMP echo id and
// payload prefix in the transport header the trace carries).
func probeSeq(ev Event, id uint16, prefix []byte) (uint16, bool) {
	// The kernel dumps at most 20 bytes of the transport header: the
	// ICMP header and 12 bytes of payload.
	th := ev.Transport
	if len(th) < 20 {
		return 0, false
	}
	n := min(len(prefix), len(th)-8)
	if binary.BigEndian.Uint16(th[4:]) != id || !slices.Equal(th[8:8+n], prefix[:n]) {
		return 0, false
	}
	return binary.BigEndian.Uint16(th[6:]), true
}

func drainNoDrop(t *testing.T, ns string, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	for {
		ev, err := tr.Read(ctx)
		if err != nil {
			return
		}
		if ev.Dropped() {
			t.Errorf("tracer in %s reports a drop: %+v", ns, ev)
		}
	}
}

// A run killed with SIGKILL leaves nothing: its owner table goes with its
// socket; a table without the owner flag (older kernels) is removed by
// CleanStale once its owner is gone, never while it lives.
func TestStaleTables(t *testing.T) {
	nstest.RequireRoot(t)
	ns := tempNS(t, "ptdns")
	nstest.KeepRulesets(t, ns.name)

	owned, ownedName := child(t, ns, true)
	if !strings.Contains(nstest.Sh(t, ns.name, "nft", "list", "tables"), ownedName) {
		t.Fatalf("child's table %s not installed", ownedName)
	}
	kill(t, owned)
	waitGone(t, ns.name, ownedName)

	dead, deadName := child(t, ns, false)
	live, liveName := child(t, ns, false)
	kill(t, dead)
	tables := nstest.Sh(t, ns.name, "nft", "list", "tables")
	if !strings.Contains(tables, deadName) || !strings.Contains(tables, liveName) {
		t.Fatalf("tables before CleanStale:\n%s", tables)
	}
	removed, err := CleanStale(ns.h)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{"bridge " + deadName, "inet " + deadName}; !slices.Equal(removed, want) {
		t.Errorf("CleanStale removed %v, want %v", removed, want)
	}
	if tables := nstest.Sh(t, ns.name, "nft", "list", "tables"); !strings.Contains(tables, liveName) || strings.Contains(tables, deadName) {
		t.Errorf("after CleanStale:\n%s", tables)
	}
	kill(t, live)
	if removed, err := CleanStale(ns.h); err != nil || len(removed) != 2 {
		t.Errorf("CleanStale after the live owner died: %v, %v", removed, err)
	}
}

// child starts this test binary as a tracer process in ns.
func child(t *testing.T, ns testNS, owner bool) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	o := "0"
	if owner {
		o = "1"
	}
	cmd.Env = append(os.Environ(), "PTD_NFTRACE_CHILD=/run/netns/"+ns.name, "PTD_NFTRACE_OWNER="+o)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 || f[1] != fmt.Sprint(owner) {
		t.Fatalf("child: %q, %v", line, err)
	}
	return cmd, f[0]
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

func waitGone(t *testing.T, ns, table string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if !strings.Contains(nstest.Sh(t, ns, "nft", "list", "tables"), table) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("table %s still there after its owner's SIGKILL", table)
}
