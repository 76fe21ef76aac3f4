package kdrop

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
	"github.com/pathtrace/pathtrace/lab"
)

// run is one watcher + prober identity shared by the scenarios.
type run struct {
	w   *Watcher
	id  uint16
	tag []byte
}

func newRun(t *testing.T) *run {
	t.Helper()
	tag := make([]byte, 46)
	copy(tag, "ptdkdrop")
	rand.Read(tag[8:16])
	r := &run{id: binary.BigEndian.Uint16(tag[8:]), tag: tag}
	w, err := Open(Match{EchoID: r.id, HasEchoID: true, Payload: tag[:MaxPayload]})
	if err != nil {
		t.Fatalf("open watcher: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	for _, n := range w.Notes() {
		t.Logf("note: %s", n)
	}
	r.w = w
	return r
}

// send sends probes seq first..first+n-1 from the namespace at path to dst.
func (r *run) send(t *testing.T, path string, dst netip.Addr, tag []byte, first uint16, n int) {
	t.Helper()
	nstest.SendProbes(t, path, dst, r.id, tag, first, n)
}

// collect reads events until n drops of echo requests with seq in [first,
// first+n) arrived or timeout. Every event read must be one of the run's
// probes (no unrelated drop matches); drops of the probes' echo replies
// after their delivery (see delivered) are skipped.
func (r *run) collect(t *testing.T, first uint16, n int, timeout time.Duration) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []Event
	for len(got) < n {
		ev, err := r.w.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (have %d of %d drops)", err, len(got), n)
		}
		e, ok := r.check(t, ev)
		if ok && e.typ == 8 && e.seq >= first && e.seq < first+uint16(n) {
			got = append(got, ev)
		}
	}
	return got
}

// check logs ev and fails the test if it is not a probe of this run, or a
// probe's drop other than an echo request's or a delivered reply's.
func (r *run) check(t *testing.T, ev Event) (echo, bool) {
	t.Helper()
	e, ok := parseEcho(ev.Packet[ev.InnerOffset:])
	if !ok || !e.isProbe(r.id, r.tag[:MaxPayload]) {
		t.Errorf("unrelated drop matched: %+v", ev)
		return e, false
	}
	t.Logf("drop type %d seq %d: %s at %s netns %d ifindex %d len %d", e.typ, e.seq, ev.ReasonName, ev.Symbol, ev.NetnsInode, ev.Ifindex, ev.SkbLen)
	if e.typ != 8 && !delivered(e, ev) {
		t.Errorf("drop of probe seq %d type %d: %s at %s", e.seq, e.typ, ev.ReasonName, ev.Symbol)
	}
	return e, true
}

// delivered: an echo reply that reached the prober's raw socket is also
// freed by the kernel's other ICMP receivers: ping_rcv (no ping socket:
// NO_SOCKET), another raw socket's filter (a user's ping: SOCKET_FILTER),
// and a socket closed with it unread (QUEUE_PURGE). The lead's correlator
// leaves these out; here they show the program sees replies too.
func delivered(e echo, ev Event) bool {
	switch ev.ReasonName {
	case "NO_SOCKET", "SOCKET_FILTER", "QUEUE_PURGE":
		return e.typ == 0
	}
	return false
}

// scenario: probes from src to dst that the kernel drops; want says where
// and why, as this kernel (6.18) reports it.
type scenario struct {
	name    string
	setup   func(t *testing.T, l *nstest.Lab)
	src     func(l *nstest.Lab) lab.Pod
	dst     func(l *nstest.Lab) netip.Addr
	size    int // probe payload bytes (0: ping's 56)
	count   int // probes (0: 3)
	reason  string
	symbol  string // function of the drop location
	netns   func(l *nstest.Lab) string
	dev     func(l *nstest.Lab) (ns, dev string)
	timeout time.Duration
	// stampAt: where to take AF_PACKET receive stamps of the probes, to
	// compare with the drop times (nil: not compared).
	stampAt func(l *nstest.Lab) (nsPath, dev string)
}

func scenarios() []scenario {
	pod := func(i int) func(l *nstest.Lab) lab.Pod { return func(l *nstest.Lab) lab.Pod { return l.Pods[i] } }
	ip := func(i int) func(l *nstest.Lab) netip.Addr {
		return func(l *nstest.Lab) netip.Addr { return l.Pods[i].IP }
	}
	podNS := func(i int) func(l *nstest.Lab) string { return func(l *nstest.Lab) string { return l.Pods[i].Netns } }
	node := func(l *nstest.Lab) string { return l.NodePath }
	eth0 := func(i int) func(l *nstest.Lab) (string, string) {
		return func(l *nstest.Lab) (string, string) { return l.Pods[i].Name, "eth0" }
	}
	return []scenario{{
		name: "bridge forward hook",
		setup: func(t *testing.T, l *nstest.Lab) {
			nstest.Nft(t, l.Node, "table bridge ptdguard {\n chain forward {\n  type filter hook forward priority 0;\n  icmp type echo-request counter drop\n }\n}\n")
		},
		src: pod(0), dst: ip(1),
		reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: node,
		// The bridge has already switched skb->dev to the output port.
		dev: func(l *nstest.Lab) (string, string) { return l.Node, l.Pods[1].HostVeth },
	}, {
		name: "destination input hook",
		setup: func(t *testing.T, l *nstest.Lab) {
			nstest.Nft(t, l.Pods[1].Name, "table inet ptdguard {\n chain input {\n  type filter hook input priority 0;\n  icmp type echo-request counter drop\n }\n}\n")
		},
		src: pod(0), dst: ip(1),
		reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: podNS(1), dev: eth0(1),
		stampAt: func(l *nstest.Lab) (string, string) { return l.Pods[1].Netns, "eth0" },
	}, {
		name: "iptables-nft input",
		setup: func(t *testing.T, l *nstest.Lab) {
			n := l.Pods[1].Name
			t.Cleanup(func() {
				nstest.ShErr(n, "iptables", "-D", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-m", "comment", "--comment", "ptd guard", "-j", "DROP")
			})
			nstest.Sh(t, n, "iptables", "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-m", "comment", "--comment", "ptd guard", "-j", "DROP")
			// iptables-nft leaves its (empty) tables behind.
			t.Cleanup(func() { nstest.ShErr(n, "nft", "delete", "table", "ip", "filter") })
		},
		src: pod(0), dst: ip(1),
		reason: "NETFILTER_DROP", symbol: "nft_do_chain", netns: podNS(1), dev: eth0(1),
	}, {
		name:  "destination nobody holds",
		setup: func(t *testing.T, l *nstest.Lab) {},
		src:   pod(0),
		dst: func(l *nstest.Lab) netip.Addr {
			return netip.AddrFrom4([4]byte{l.Cfg.Subnet.Addr().As4()[0], l.Cfg.Subnet.Addr().As4()[1], l.Cfg.Subnet.Addr().As4()[2], 200})
		},
		reason: "NEIGH_FAILED", symbol: "neigh_invalidate", netns: podNS(0), dev: eth0(0),
		timeout: 8 * time.Second, // the neighbour fails ~3 s after the first solicitation
	}, {
		name: "reverse path filter",
		setup: func(t *testing.T, l *nstest.Lab) {
			// pod1 sends to pod3 from an address the node routes elsewhere
			// (cni1), so the node's strict rp_filter on cni0 refuses it.
			p1, spoof := l.Pods[0].Name, spoofAddr(l)
			// A permanent gateway neighbour: the node would not answer an
			// ARP request from the spoofed source either (rp_filter).
			mac := strings.TrimSpace(nstest.Sh(t, l.Node, "cat", "/sys/class/net/cni0/address"))
			nstest.Sh(t, p1, "ip", "neigh", "replace", gateway(l).String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
			t.Cleanup(func() { nstest.ShErr(p1, "ip", "neigh", "del", gateway(l).String(), "dev", "eth0") })
			nstest.Sh(t, p1, "ip", "addr", "add", spoof.String()+"/32", "dev", "eth0")
			nstest.Sh(t, p1, "ip", "route", "add", l.Pods[2].IP.String()+"/32", "via", gateway(l).String(), "src", spoof.String())
			nstest.Sh(t, l.Node, "ip", "route", "add", spoof.String()+"/32", "dev", "cni1")
			nstest.Sysctl(t, l.Node, "net.ipv4.conf.all.rp_filter", "1")
			nstest.Sysctl(t, l.Node, "net.ipv4.conf.cni0.rp_filter", "1")
			t.Cleanup(func() {
				nstest.ShErr(p1, "ip", "route", "del", l.Pods[2].IP.String()+"/32")
				nstest.ShErr(p1, "ip", "addr", "del", spoof.String()+"/32", "dev", "eth0")
				nstest.ShErr(l.Node, "ip", "route", "del", spoof.String()+"/32")
			})
		},
		src: pod(0), dst: ip(2),
		reason: "IP_RPFILTER", symbol: "ip_rcv_finish_core", netns: node,
		dev: func(l *nstest.Lab) (string, string) { return l.Node, "cni0" },
	}, {
		name: "veth peer MTU",
		setup: func(t *testing.T, l *nstest.Lab) {
			// pod1's eth0 takes 9000 bytes, its host-side peer 1450: the
			// veth cannot hand the frame over.
			n := l.Pods[0].Name
			t.Cleanup(func() { nstest.ShErr(n, "ip", "link", "set", "eth0", "mtu", "1450") })
			nstest.Sh(t, n, "ip", "link", "set", "eth0", "mtu", "9000")
		},
		src: pod(0), dst: ip(1), size: 2000,
		// This kernel gives no specific reason here; skb->dev is still
		// the sending end.
		reason: "NOT_SPECIFIED", symbol: "__dev_forward_skb2", netns: podNS(0), dev: eth0(0),
	}, {
		name: "routed over MTU",
		setup: func(t *testing.T, l *nstest.Lab) {
			// The node forwards into cni1 with a smaller MTU than the
			// probe (DF set): ICMP fragmentation needed, probe dropped.
			t.Cleanup(func() { nstest.ShErr(l.Node, "ip", "link", "set", "cni1", "mtu", "1450") })
			nstest.Sh(t, l.Node, "ip", "link", "set", "cni1", "mtu", "1280")
		},
		// One probe: the ICMP error teaches pod1 the path MTU, and it
		// fragments the next ones itself.
		src: pod(0), dst: ip(2), size: 1400, count: 1,
		reason: "PKT_TOO_BIG", symbol: "ip_forward", netns: node,
		dev: func(l *nstest.Lab) (string, string) { return l.Node, "cni0" },
	}}
}

func spoofAddr(l *nstest.Lab) netip.Addr {
	a := l.Cfg.Subnet.Addr().As4()
	return netip.AddrFrom4([4]byte{a[0], a[1], a[2] + 1, 250})
}

func gateway(l *nstest.Lab) netip.Addr { return l.Cfg.Subnet.Addr().Next() }

// unrelated makes drops that must not match while a scenario runs: the
// user's own pings over the same path (same rules, other id and payload)
// and UDP to a closed port (NO_SOCKET).
func unrelated(t *testing.T, src lab.Pod, dst netip.Addr) {
	nstest.ShErr(src.Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-s", "56", dst.String())
	nstest.ShErr(src.Name, "sh", "-c", "echo x | socat - UDP:"+dst.String()+":9")
}

func TestDrops(t *testing.T) {
	nstest.RequireRoot(t)
	l := nstest.UpLab(t, "ptdk", 253)
	nstest.KeepRulesets(t, l.Namespaces()...)
	keepTimestamps(t)
	r := newRun(t)
	for i, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			sc.setup(t, l)
			src, dst := sc.src(l), sc.dst(l)
			first := uint16(1000 * (i + 1))
			tag := r.tag
			if sc.size > len(tag) {
				tag = append(append([]byte(nil), tag...), make([]byte, sc.size-len(tag))...)
			}
			var sn *sniffer
			if sc.stampAt != nil {
				p, dev := sc.stampAt(l)
				sn = sniff(t, p, nstest.Ifindex(t, l.Pods[1].Name, dev))
			}
			done := make(chan struct{})
			go func() { defer close(done); unrelated(t, src, dst) }()
			count := sc.count
			if count == 0 {
				count = 3
			}
			r.send(t, src.Netns, dst, tag, first, count)
			timeout := sc.timeout
			if timeout == 0 {
				timeout = 3 * time.Second
			}
			evs := r.collect(t, first, count, timeout)
			<-done
			wantNS := nstest.Inode(t, sc.netns(l))
			dns, dev := sc.dev(l)
			wantIf := nstest.Ifindex(t, dns, dev)
			for _, ev := range evs {
				if ev.ReasonName != sc.reason {
					t.Errorf("reason %s (%d), want %s", ev.ReasonName, ev.Reason, sc.reason)
				}
				if fn, _, _ := strings.Cut(ev.Symbol, "+"); fn != sc.symbol {
					t.Errorf("location %s (%#x), want in %s", ev.Symbol, ev.Location, sc.symbol)
				}
				if ev.NetnsInode != wantNS || ev.Ifindex != wantIf {
					t.Errorf("netns %d ifindex %d, want %d (%s) ifindex %d (%s in %s)", ev.NetnsInode, ev.Ifindex, wantNS, sc.netns(l), wantIf, dev, dns)
				}
				if ev.L3Proto != 0x0800 || ev.InnerOffset != 0 {
					t.Errorf("l3 %#x inner %d, want IPv4 outer", ev.L3Proto, ev.InnerOffset)
				}
				if ev.SkbLen < uint32(20+8+len(tag)) {
					t.Errorf("skb len %d shorter than the probe", ev.SkbLen)
				}
			}
			if sn != nil {
				checkStamps(t, evs, sn.stamps(func(e echo) bool { return e.isProbe(r.id, r.tag[:MaxPayload]) }))
			}
			// Later drops of these probes or of the unrelated traffic (a
			// neighbour failing late) must not show either.
			r.quiet(t, 500*time.Millisecond)
		})
	}
	if n := r.w.Lost(); n != 0 {
		t.Errorf("lost %d drop events", n)
	}
}

// checkStamps compares each drop's time with the AF_PACKET receive stamp
// of the same probe a hop before: the drop follows by microseconds.
func checkStamps(t *testing.T, evs []Event, stamps map[uint16]int64) {
	t.Helper()
	for _, ev := range evs {
		e, _ := parseEcho(ev.Packet)
		at, ok := stamps[e.seq]
		if !ok {
			t.Errorf("no AF_PACKET stamp for probe seq %d", e.seq)
			continue
		}
		d := time.Duration(ev.Time - at)
		t.Logf("seq %d: dropped %v after its AF_PACKET receive stamp", e.seq, d)
		if d < 0 || d > 10*time.Millisecond {
			t.Errorf("seq %d: drop time %v from the AF_PACKET stamp, want within 0..10ms", e.seq, d)
		}
	}
}

// quiet reads for d: every event must be a probe's delivered reply (a
// later drop of these probes, or any match of the unrelated traffic, is an
// error).
func (r *run) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		ev, err := r.w.Read(ctx)
		if err != nil {
			return
		}
		if e, ok := r.check(t, ev); ok && e.typ == 8 {
			t.Errorf("late drop of probe seq %d: %s at %s", e.seq, ev.ReasonName, ev.Symbol)
		}
	}
}
