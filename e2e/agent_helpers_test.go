package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/lab"
)

// waitSockets waits until every point has at least n packet sockets bound
// for capture (the runs under test arm them).
func waitSockets(t *testing.T, points []pointSpec, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range points {
		ns := filepath.Join("/run/netns", p.Netns)
		link, err := linkIn(ns, p.Ifname)
		if err != nil {
			t.Fatal(err)
		}
		for {
			got, err := packetSocketsArmed(ns, link.Attrs().Index)
			if err != nil {
				t.Fatal(err)
			}
			if got >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d packet sockets after 20 s, want %d", p.Name, got, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// hideNow hides namespaces until the returned function (or the test's
// end) puts them back.
func hideNow(t *testing.T, names ...string) func() {
	t.Helper()
	var unhide []func() error
	for _, n := range names {
		u, err := lab.Hide(n)
		if err != nil {
			t.Fatal(err)
		}
		unhide = append(unhide, u)
	}
	done := false
	f := func() {
		if done {
			return
		}
		done = true
		for _, u := range unhide {
			if err := u(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(f)
	return f
}

// startCapture is startTrace with stdout going to out (a stream), when set.
func startCapture(t *testing.T, ctx context.Context, out io.Writer, args ...string) func() *traceRun {
	t.Helper()
	if out == nil {
		return startTrace(t, ctx, args...)
	}
	done := make(chan *traceRun, 1)
	go func() {
		var errb bytes.Buffer
		code := runIO(ctx, args, out, &errb)
		done <- &traceRun{Code: code, Stderr: errb.String()}
	}()
	return func() *traceRun { return <-done }
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// traceKey tells traces of one run apart: the same frame at every point.
func traceKey(tr *jTrace) string {
	s := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	seq := "-"
	if tr.Seq != nil {
		seq = fmt.Sprint(*tr.Seq)
	}
	return fmt.Sprintf("%s %s %s>%s", tr.Type, seq, s(tr.SrcIP), s(tr.DstIP))
}

// compareMerged: the agents' captures put together give the live run's
// points (named and grouped by node alike), its traces (the same frames at
// the same points, the hops in the same order) and its hop latencies:
// within nodeB's offset's uncertainty where a hop crosses between the
// nodes, to the stamp elsewhere; hop times are each capture's own, nodeB's
// agentShift later; the offset is estimated, agentShift within its
// uncertainty.
func compareMerged(t *testing.T, live *liveDoc, m *mergedDoc) {
	t.Helper()
	var names []string
	node := map[string]string{}
	for i, p := range m.Points {
		names = append(names, p.Name)
		node[p.Name] = p.Node
		if i < len(live.Points) && live.Points[i].Node != p.Node {
			t.Errorf("point %s on node %q, live %q", p.Name, p.Node, live.Points[i].Node)
		}
	}
	if !slices.Equal(names, live.pointNames()) {
		t.Fatalf("merged points %v, live %v", names, live.pointNames())
	}
	nodeB := m.Points[len(m.Points)-1].Node
	var unc int64
	if len(m.ClockOffsets) != 5 {
		t.Fatalf("clock offsets %+v, want one per nodeB point", m.ClockOffsets)
	}
	for _, c := range m.ClockOffsets {
		d := c.OffsetNs - int64(agentShift)
		if node[c.Point] != nodeB || c.Reference != m.Points[0].Name || c.Source != "estimated" || c.Samples == 0 ||
			c.UncertaintyNs <= 0 || max(d, -d) > c.UncertaintyNs+1000 {
			t.Errorf("clock offset %+v, want %v ± its uncertainty at a %s point from %s", c, agentShift, nodeB, m.Points[0].Name)
		}
		unc = max(unc, c.UncertaintyNs)
	}
	const stamp = 1000 // ns: what one stamp may differ between two sockets
	crossTol := unc + stamp
	want := map[string][]*jTrace{}
	for i := range live.Traces {
		k := traceKey(&live.Traces[i])
		want[k] = append(want[k], &live.Traces[i])
	}
	if len(m.Traces) != len(live.Traces) {
		t.Errorf("%d merged traces, live %d", len(m.Traces), len(live.Traces))
	}
	var worstIn, worstWire int64
	for i := range m.Traces {
		got := &m.Traces[i]
		k := traceKey(got)
		if len(want[k]) == 0 {
			t.Errorf("merged trace %s (%v): not in the live run", k, (*liveTrace)(got).points())
			continue
		}
		w := want[k][0]
		want[k] = want[k][1:]
		if a, b := (*liveTrace)(got).points(), (*liveTrace)(w).points(); !slices.Equal(a, b) || got.LostAfter != w.LostAfter {
			t.Errorf("trace %s: merged hops %v lost after %q, live %v %q", k, a, got.LostAfter, b, w.LostAfter)
			continue
		}
		for j := range got.Hops {
			g, l := &got.Hops[j], &w.Hops[j]
			shift := int64(0)
			if node[g.Point] == nodeB {
				shift = int64(agentShift)
			}
			if d := hopNs(t, g) - hopNs(t, l) - shift; max(d, -d) > stamp {
				t.Errorf("trace %s at %s: merged %s, live %s: %d ns apart beside the shift", k, g.Point, g.Time, l.Time, d)
			}
			d := g.DeltaNs - l.DeltaNs
			d = max(d, -d)
			if j > 0 && node[got.Hops[j-1].Point] != node[g.Point] {
				worstWire = max(worstWire, d)
				if d > crossTol {
					t.Errorf("trace %s: %s → %s %d ns, live %d: more than the offset's uncertainty %d ns apart", k, got.Hops[j-1].Point, g.Point, g.DeltaNs, l.DeltaNs, unc)
				}
			} else if worstIn = max(worstIn, d); d > stamp {
				t.Errorf("trace %s at %s: delta %d ns, live %d", k, g.Point, g.DeltaNs, l.DeltaNs)
			}
		}
	}
	for k, left := range want {
		if len(left) > 0 {
			t.Errorf("live trace %s: not in the merged analysis", k)
		}
	}
	compareHopLatency(t, live.HopLatency, m.HopLatency, node, crossTol)
	if m.Summary.Verdict == "" || !strings.HasPrefix(m.Summary.Verdict, "OK") {
		t.Errorf("merged verdict %q", m.Summary.Verdict)
	}
	t.Logf("nodeB's offset %v ± %v, drift %g ppm, %d samples (shifted by %v); merged vs live: hops within a node %d ns apart at most, across the wire %d ns",
		time.Duration(m.ClockOffsets[0].OffsetNs), time.Duration(unc), m.ClockOffsets[0].DriftPPM, m.ClockOffsets[0].Samples, agentShift, worstIn, worstWire)
}

// compareHopLatency: the same hop pairs with the same counts, their
// statistics within tol across nodes and to the stamp within one.
func compareHopLatency(t *testing.T, live, merged []jHopStat, node map[string]string, crossTol int64) {
	t.Helper()
	key := func(h jHopStat) string { return h.From + " → " + h.To }
	lm := map[string]jHopStat{}
	for _, h := range live {
		lm[key(h)] = h
	}
	if len(merged) != len(live) {
		t.Errorf("%d hop pairs, live %d", len(merged), len(live))
	}
	for _, h := range merged {
		l, ok := lm[key(h)]
		if !ok || l.Count != h.Count {
			t.Errorf("hop %s: %d samples, live %d", key(h), h.Count, l.Count)
			continue
		}
		tol := int64(1000)
		if node[h.From] != node[h.To] {
			tol = crossTol
		}
		for _, d := range []int64{h.MinNs - l.MinNs, h.P50Ns - l.P50Ns, h.MaxNs - l.MaxNs} {
			if max(d, -d) > tol {
				t.Errorf("hop %s: min/p50/max %d/%d/%d ns, live %d/%d/%d (tolerance %d)", key(h), h.MinNs, h.P50Ns, h.MaxNs, l.MinNs, l.P50Ns, l.MaxNs, tol)
				break
			}
		}
	}
}

// checkAlone: one node's evidence analyses on its own: its five points in
// its order, every echo complete there.
func checkAlone(t *testing.T, l *lab.Lab, r *agentRun) {
	t.Helper()
	for _, c := range []struct {
		dir  string
		pod  lab.Pod
		node lab.Node
	}{{r.dirA, l.Pods[0], l.Nodes[0]}, {r.shiftedB, l.Pods[1], l.Nodes[1]}} {
		d := analyzeAgents(t, c.dir)
		want := []string{c.pod.Name, c.pod.Name + "-veth", c.node.Bridge, c.node.Tunnel, "eth0"}
		var got []string
		for _, p := range d.Points {
			got = append(got, p.Name)
		}
		if !slices.Equal(got, want) || len(d.ClockOffsets) != 0 {
			t.Errorf("%s alone: points %v, clock offsets %+v; want %v, none", c.dir, got, d.ClockOffsets, want)
		}
		echoes := 0
		for _, tr := range d.Traces {
			if tr.Type == "echo-request" || tr.Type == "echo-reply" {
				echoes++
				if len(tr.Hops) != 5 || tr.LostAfter != "" {
					t.Errorf("%s alone: %s %d at %v, lost after %q", c.dir, tr.Type, *tr.Seq, (*liveTrace)(&tr).points(), tr.LostAfter)
				}
			}
		}
		if echoes != 10 {
			t.Errorf("%s alone: %d echoes, want 10", c.dir, echoes)
		}
	}
}

// checkWrongPair: nodeA's evidence beside nodeB's of another run (pings of
// its own) shares no frame, and the analysis says so.
func checkWrongPair(t *testing.T, l *lab.Lab, r *agentRun) {
	t.Helper()
	p1, p2 := l.Pods[0], l.Pods[1]
	dir := filepath.Join(t.TempDir(), "other")
	ctx, stop := context.WithCancel(traceCtx(t))
	defer stop()
	wait := startCapture(t, ctx, nil, "capture", "--src", p1.IP.String(), "--dst", p2.Name, "--duration", "0", "--out", dir, "-q")
	waitSockets(t, nodesPath(l)[5:], 1)
	mustRun(t, inNetns(context.Background(), p1.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", p2.IP.String()))
	time.Sleep(200 * time.Millisecond)
	stop()
	if rb := wait(); rb.Code != exitInterrupted {
		t.Fatalf("the other run: exit %d\n%s", rb.Code, rb.describe())
	}
	code, out, errb := runCLI(t, "analyze", "-q", "-f", "json", r.dirA, dir)
	var d jResult
	if code != exitFindings || json.Unmarshal([]byte(out), &d) != nil {
		t.Fatalf("analyze a wrong pair: exit %d, want %d: %s", code, exitFindings, errb)
	}
	if !slices.ContainsFunc(d.Anomalies, func(a jAnomaly) bool { return a.Kind == "no-shared-frames" }) {
		t.Errorf("a wrong pair: anomalies %+v, want no-shared-frames; verdict %q", d.Anomalies, d.Summary.Verdict)
	}
}
