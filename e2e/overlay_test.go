package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/pipeline"
	"github.com/pathtrace/pathtrace/report"
)

// Across nodes, live: the two-node lab with each overlay, traced pod1 on
// nodeA → pod2 on nodeB at every point of the path on both nodes in one
// run, and checked against tcpdump at the same points.

// nodesLab builds a two-node lab of the test's own.
func nodesLab(t *testing.T, cfg lab.NodesConfig) *lab.Lab { return lab.UpNodesT(t, "ov", cfg) }

// nodesPath is the points of pod1 → pod2 across the lab's nodes, named as
// pathtrace names them: the nodes' own interfaces (on both) with the
// node's name in front.
func nodesPath(l *lab.Lab) []pointSpec {
	a, b := l.Nodes[0], l.Nodes[1]
	p1, p2 := l.Pods[0], l.Pods[1]
	own := func(n lab.Node, ifname string) pointSpec { return pointSpec{n.Name + "-" + ifname, n.Name, ifname} }
	ps := []pointSpec{{p1.Name, p1.Name, "eth0"}, {p1.Name + "-veth", a.Name, p1.HostVeth}}
	if a.Bridge != "" {
		ps = append(ps, own(a, a.Bridge))
	}
	if a.Tunnel != "" {
		ps = append(ps, own(a, a.Tunnel))
	}
	ps = append(ps, own(a, "eth0"), own(b, "eth0"))
	if b.Tunnel != "" {
		ps = append(ps, own(b, b.Tunnel))
	}
	if b.Bridge != "" {
		ps = append(ps, own(b, b.Bridge))
	}
	return append(ps, pointSpec{p2.Name + "-veth", b.Name, p2.HostVeth}, pointSpec{p2.Name, p2.Name, "eth0"})
}

type overlayCase struct {
	cfg   lab.NodesConfig
	encap string // on the wire hops; "" for routes as they are
	vni   uint64
	// routed are the points where each node's routing shows, requests
	// first: TTL one less, and the MACs rewritten where the point before
	// it has an Ethernet header too.
	routed [2]string
	macs   bool
}

func TestTraceAcrossNodes(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "tcpdump", "tshark")
	cases := map[string]overlayCase{
		"vxlan":       {cfg: lab.NodesConfig{Backend: lab.BackendVXLAN}, encap: "vxlan", vni: 1, routed: [2]string{"A-flannel.1", "B-cni0"}, macs: true},
		"ipip":        {cfg: lab.NodesConfig{Backend: lab.BackendIPIP}, encap: "ipip", routed: [2]string{"A-tunl0", "B-cni0"}},
		"host-gw":     {cfg: lab.NodesConfig{Backend: lab.BackendHostGW}, routed: [2]string{"A-eth0", "B-cni0"}, macs: true},
		"calico-ipip": {cfg: lab.NodesConfig{CNI: lab.CNICalico, Backend: lab.BackendIPIP}, encap: "ipip", routed: [2]string{"A-tunl0", "pod2-veth"}},
	}
	for _, name := range []string{"vxlan", "ipip", "host-gw", "calico-ipip"} {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			l := nodesLab(t, c.cfg)
			points := nodesPath(l)
			tds := startTcpdumpFilter(t, t.TempDir(), points, "")
			out := filepath.Join(t.TempDir(), "evidence")
			r := runTrace(t, traceCtx(t), "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "5", "-i", "100ms", "--timeout", "1s",
				"-f", "json", "--out", out)
			stopTcpdump(t, tds)
			if r.Code != exitOK || r.Doc == nil {
				t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
			}
			d := r.Doc
			names := specNames(points)
			if got := d.pointNames(); !slices.Equal(got, names) {
				t.Fatalf("points %v, want %v", got, names)
			}
			checkEchoes(t, d, 5, names)
			checkNoDrops(t, d)
			checkDiscovery(t, d, names)
			checkNodes(t, d, l, names)
			checkWire(t, d, l, c)
			checkRouting(t, d, l, c)
			compareWithTcpdump(t, d, tds)
			compareWithEvidence(t, d, out)
		})
	}
}

// compareWithEvidence: analysing the run's path.pcapng (raw IP at TUN
// points, Ethernet elsewhere) gives back the same echoes at the same points
// and times.
func compareWithEvidence(t *testing.T, d *liveDoc, dir string) {
	t.Helper()
	code, out, errb := runCLI(t, "analyze", "-f", "json", filepath.Join(dir, "path.pcapng"))
	if code != exitOK {
		t.Fatalf("analyze the evidence: exit %d: %s", code, errb)
	}
	var a jResult
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	echoes := func(ts []jTrace) []string {
		var s []string
		for _, tr := range ts {
			if tr.Type == "echo-request" || tr.Type == "echo-reply" {
				e := fmt.Sprintf("%s %d:", tr.Type, *tr.Seq)
				for _, h := range tr.Hops {
					e += " " + h.Point + "@" + h.Time
				}
				s = append(s, e)
			}
		}
		return s
	}
	if got, want := echoes(a.Traces), echoes(d.Traces); !slices.Equal(got, want) {
		t.Errorf("the evidence's echoes differ from the live run's:\n%q\nwant\n%q", got, want)
	}
}

// checkNodes: every point names its node, nodeA's first.
func checkNodes(t *testing.T, d *liveDoc, l *lab.Lab, names []string) {
	t.Helper()
	half := len(names) / 2
	for i, p := range d.Points {
		want := l.Nodes[0].Name
		if i >= half {
			want = l.Nodes[1].Name
		}
		if p.Node != want {
			t.Errorf("point %s: node %q, want %q", p.Name, p.Node, want)
		}
	}
}

// checkWire: on both nodes' eth0 every echo is in the tunnel between the
// nodes' addresses, outer source the sending node's.
func checkWire(t *testing.T, d *liveDoc, l *lab.Lab, c overlayCase) {
	t.Helper()
	a, b := l.Nodes[0], l.Nodes[1]
	for _, typ := range []string{"echo-request", "echo-reply"} {
		from, to := a.IP.String(), b.IP.String()
		if typ == "echo-reply" {
			from, to = to, from
		}
		for _, tr := range d.ofType(typ) {
			for _, pt := range []string{a.Name + "-eth0", b.Name + "-eth0"} {
				h := tr.hop(pt)
				if h == nil {
					continue // checkEchoes said so
				}
				e := h.Encap
				switch {
				case c.encap == "" && e != nil:
					t.Errorf("%s at %s: encap %+v, want none", tr, pt, *e)
				case c.encap == "":
				case e == nil || e.Type != c.encap || e.OuterSrcIP == nil || *e.OuterSrcIP != from || e.OuterDstIP == nil || *e.OuterDstIP != to:
					t.Errorf("%s at %s: encap %+v, want %s %s → %s", tr, pt, e, c.encap, from, to)
				case c.vni != 0 && (e.VNI == nil || *e.VNI != c.vni || e.DstPort == nil || *e.DstPort != 8472):
					t.Errorf("%s at %s: VNI %v port %v, want VNI %d to 8472", tr, pt, e.VNI, e.DstPort, c.vni)
				}
			}
		}
	}
}

// checkRouting: the TTL drops by one where each node routes (requests at
// routed[0] on nodeA and routed[1] on nodeB, replies at the mirror points),
// with the MACs rewritten there when both sides have MACs.
func checkRouting(t *testing.T, d *liveDoc, l *lab.Lab, c overlayCase) {
	t.Helper()
	full := func(s string) string {
		switch s[:2] {
		case "A-":
			return l.Nodes[0].Name + s[1:]
		case "B-":
			return l.Nodes[1].Name + s[1:]
		}
		return l.Prefix + s
	}
	names := d.pointNames()
	mirror := func(p string) string { // the point a reply is routed at, mirroring a request's
		return names[len(names)-1-slices.Index(names, p)]
	}
	for _, typ := range []string{"echo-request", "echo-reply"} {
		want := []string{full(c.routed[0]), full(c.routed[1])}
		if typ == "echo-reply" {
			want = []string{mirror(want[0]), mirror(want[1])}
		}
		for _, tr := range d.ofType(typ) {
			var ttl, macs []string
			for _, rw := range tr.Rewrites {
				switch rw.Field {
				case "ttl":
					ttl = append(ttl, fmt.Sprintf("%s %s→%s", rw.Point, rw.From, rw.To))
				case "src_mac":
					macs = append(macs, rw.Point)
				}
			}
			wantTTL := []string{want[0] + " 64→63", want[1] + " 63→62"}
			if !slices.Equal(ttl, wantTTL) {
				t.Errorf("%s: TTL rewrites %v, want %v", tr, ttl, wantTTL)
			}
			if c.macs && !slices.Equal(macs, want) {
				t.Errorf("%s: MAC rewrites at %v, want %v", tr, macs, want)
			}
		}
	}
}

// compareWithTcpdump: at every point tcpdump saw the run's echoes that
// pathtrace reports there, no more, no fewer, with the same stamps to the
// microsecond.
func compareWithTcpdump(t *testing.T, d *liveDoc, tds []*tcpdumpAt) {
	t.Helper()
	reqs := d.ofType("echo-request")
	if len(reqs) == 0 || reqs[0].ID == nil {
		t.Fatal("no echo request with an id")
	}
	var files []string
	for _, td := range tds {
		files = append(files, td.file)
	}
	seen := tsharkAll(t, files, *reqs[0].ID)
	var worst time.Duration
	for i, td := range tds {
		got, want := jsonEchoes(t, d, td.point.Name), seen[i]
		if len(want) != len(got) || len(want) != 10 {
			t.Errorf("%s: tcpdump saw %d of the run's echoes, pathtrace %d, want 10", td.point.Name, len(want), len(got))
		}
		for k, ts := range want {
			ps, ok := got[k]
			if !ok {
				t.Errorf("%s: tcpdump saw ICMP type %d seq %d, pathtrace did not", td.point.Name, k.Type, k.Seq)
				continue
			}
			diff := time.Duration(max(ps-ts, ts-ps))
			worst = max(worst, diff)
			if diff >= time.Microsecond {
				t.Errorf("%s: ICMP type %d seq %d: pathtrace %d, tcpdump %d: %v apart", td.point.Name, k.Type, k.Seq, ps, ts, diff)
			}
		}
	}
	t.Logf("%d points: the same echoes as tcpdump's, stamps at most %v apart", len(tds), worst)
}

// The path when the other node is not visible here: it ends at nodeA's
// underlay with a note; what crosses it is complete that far.
func TestTraceAcrossNodesNotVisible(t *testing.T) {
	testenv.RequireRoot(t)
	l := nodesLab(t, lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	mustRun(t, inNetns(context.Background(), a.Name, "ping", "-c", "1", "-W", "1", b.IP.String()))
	lab.HideT(t, b.Name, l.Pods[1].Name)
	d := traceRemote(t, l.Pods[0].Name, l.Pods[1].IP)
	want := []string{l.Pods[0].Name, l.Pods[0].Name + "-veth", "cni0", "flannel.1", "eth0"}
	if got := d.pointNames(); !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
	checkEchoes(t, d, 3, want)
	notes := d.Discovery.Notes
	if len(notes) != 1 || !containsAll(notes[0], "leaves node "+a.Name, "flannel.1 (vxlan VNI 1, UDP 8472 to "+b.IP.String(), "points stop at eth0", "pathtrace capture") {
		t.Errorf("notes %q", notes)
	}
	if !slices.ContainsFunc(d.Warnings, func(w string) bool { return containsAll(w, "points stop at eth0") }) {
		t.Errorf("warnings %q: the note is not in the report", d.Warnings)
	}
}

// traceRemote traces from the namespace src to dst, an address no
// namespace here holds, as the CLI does (discover, trace, JSON), but
// without resolving dst by searching every namespace on the machine:
// other labs hold the same addresses.
func traceRemote(t *testing.T, src string, dst netip.Addr) *liveDoc {
	t.Helper()
	ctx := traceCtx(t)
	ep, err := discover.NewResolver().Resolve(src)
	if err != nil {
		t.Fatal(err)
	}
	path, err := discover.Discover(ctx, ep, discover.Remote(dst))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pipeline.Trace(ctx, pipeline.TraceOptions{Path: path, Count: 3, Interval: 100 * time.Millisecond,
		Timeout: time.Second, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.JSON(&buf, doc); err != nil {
		t.Fatal(err)
	}
	d := &liveDoc{}
	if err := json.Unmarshal(buf.Bytes(), d); err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	return d
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
