package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/netns"
)

// e2eRoot skips a test that needs root, except in CI where it must run.

var (
	labMu    sync.Mutex
	labTaken = map[string]bool{}
)

// e2eConfig gives a test a prefix and a /24 of its own in 10.90–10.99.
func e2eConfig(t *testing.T) lab.Config { return uniqueLab(t, "e2", 90) }

// uniqueLab derives a lab prefix (tag + 6 hex digits) and a /24 in
// 10.base–10.base+9 from the test name and the PID, so parallel `go test`
// runs and other tests' labs (which use other bases) do not meet. The third
// octet is even so a routed lab's second subnet (the next /24) stays inside
// the same block.
func uniqueLab(t *testing.T, tag string, base byte) lab.Config {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", t.Name(), os.Getpid())
	v := h.Sum32()
	labMu.Lock()
	defer labMu.Unlock()
	for {
		sub := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, base + byte(v%10), byte(v>>8) &^ 1, 0}), 24)
		prefix := fmt.Sprintf("%s%06x-", tag, v&0xffffff)
		if !labTaken[prefix] && !labTaken[sub.String()] {
			labTaken[prefix], labTaken[sub.String()] = true, true
			return lab.Config{Prefix: prefix, Subnet: sub}
		}
		v = v*16777619 + 1
	}
}

func e2eUp(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	t.Cleanup(func() {
		if err := lab.Down(cfg); err != nil {
			t.Errorf("lab down %q: %v", cfg.Prefix, err)
		}
	})
	l, err := lab.Up(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab up %q: %v", cfg.Prefix, err)
	}
	return l
}

// cniUp builds a node whose pods the real CNI bridge plugin wires, and
// removes it at cleanup.
func cniUp(t *testing.T, cfg lab.Config, pods int) *lab.Lab {
	t.Helper()
	t.Cleanup(func() {
		if err := lab.Down(lab.Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	l, err := lab.CNINode(context.Background(), lab.CNIConfig{Prefix: cfg.Prefix, Subnet: cfg.Subnet, Pods: pods, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// liveDoc is `pathtrace --src --dst -f json` as a consumer reads it: the
// analysis result, plus what only a live run has.
type liveDoc struct {
	jResult
	Discovery *discover.Path  `json:"discovery"`
	Live      *liveInfoReport `json:"live"`
}

// liveTrace is a trace of the live JSON: the same fields as analyze's.
type liveTrace = jTrace

type liveInfoReport struct {
	Probes      int      `json:"probes"`
	Sent        int      `json:"sent"`
	Replies     int      `json:"replies"`
	EchoID      *uint64  `json:"echo_id"`
	Interrupted bool     `json:"interrupted"`
	Evidence    []string `json:"evidence"`
	SpoolFile   int64    `json:"spool_file_bytes"`
}

func (d *liveDoc) pointNames() []string {
	var s []string
	for _, p := range d.Points {
		s = append(s, p.Name)
	}
	return s
}

func (d *liveDoc) ofType(typ string) []*liveTrace {
	var s []*liveTrace
	for i := range d.Traces {
		if d.Traces[i].Type == typ {
			s = append(s, &d.Traces[i])
		}
	}
	return s
}

func (d *liveDoc) byN(n int) *liveTrace {
	for i := range d.Traces {
		if d.Traces[i].N == n {
			return &d.Traces[i]
		}
	}
	return nil
}

func (d *liveDoc) anomaly(kind, point string) *jAnomaly {
	for i := range d.Anomalies {
		if a := &d.Anomalies[i]; a.Kind == kind && a.Point == point {
			return a
		}
	}
	return nil
}

func (tr *liveTrace) points() []string {
	var s []string
	for _, h := range tr.Hops {
		s = append(s, h.Point)
	}
	return s
}

func (tr *liveTrace) hop(point string) *jHop {
	for i := range tr.Hops {
		if tr.Hops[i].Point == point {
			return &tr.Hops[i]
		}
	}
	return nil
}

func (tr *liveTrace) String() string {
	seq := "-"
	if tr.Seq != nil {
		seq = strconv.FormatUint(*tr.Seq, 10)
	}
	return fmt.Sprintf("#%d %s seq %s", tr.N, tr.Type, seq)
}

// hopNs is a hop's stamp in ns since the epoch.
func hopNs(t *testing.T, h *jHop) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, h.Time)
	if err != nil {
		t.Fatalf("hop time %q: %v", h.Time, err)
	}
	return ts.UnixNano()
}

// traceRun is one in-process run of the live tracer.
type traceRun struct {
	Code           int
	Stdout, Stderr string
	Doc            *liveDoc
}

// runTrace runs a pathtrace command line in-process, checks that every OS
// thread is back in the test's namespace afterwards and decodes JSON output.
func runTrace(t *testing.T, ctx context.Context, args ...string) *traceRun {
	t.Helper()
	return startTrace(t, ctx, args...)()
}

// startTrace runs the command line in a goroutine; the returned function
// waits for it and must be called from the test's goroutine.
func startTrace(t *testing.T, ctx context.Context, args ...string) func() *traceRun {
	t.Helper()
	home := netnsLink(t)
	type outcome struct {
		code      int
		out, errb bytes.Buffer
		elapsed   time.Duration
	}
	done := make(chan *outcome, 1)
	go func() {
		o := &outcome{}
		start := time.Now()
		o.code = runIO(ctx, args, &o.out, &o.errb)
		o.elapsed = time.Since(start)
		done <- o
	}()
	return func() *traceRun {
		t.Helper()
		o := <-done
		t.Logf("pathtrace %s: exit %d in %v", strings.Join(args, " "), o.code, o.elapsed.Round(time.Millisecond))
		r := &traceRun{Code: o.code, Stdout: o.out.String(), Stderr: o.errb.String()}
		checkThreadsHome(t, home)
		if slices.Contains(args, "json") && o.out.Len() > 0 {
			var d liveDoc
			if err := json.Unmarshal(o.out.Bytes(), &d); err != nil {
				t.Fatalf("decode pathtrace JSON: %v\nstderr: %s\n%.3000s", err, r.Stderr, r.Stdout)
			}
			r.Doc = &d
		}
		return r
	}
}

// describe is what a failed expectation needs to see: stderr, the verdict,
// the anomalies and each trace's hops, or the raw output if it was no JSON.
func (r *traceRun) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stderr: %s\n", strings.TrimSpace(r.Stderr))
	if r.Doc == nil {
		fmt.Fprintf(&b, "stdout: %.2000s", r.Stdout)
		return b.String()
	}
	fmt.Fprintf(&b, "verdict: %s\n", r.Doc.Summary.Verdict)
	for _, a := range r.Doc.Anomalies {
		fmt.Fprintf(&b, "anomaly: %s %s at %s ×%d: %s\n", a.Severity, a.Kind, a.Point, a.Count, a.Message)
	}
	for _, w := range r.Doc.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for i := range r.Doc.Traces {
		tr := &r.Doc.Traces[i]
		fmt.Fprintf(&b, "trace %s: %v lost_after %q missing %v\n", tr, tr.points(), tr.LostAfter, tr.Missing)
	}
	return b.String()
}

// netnsLink is the link target of the process's network namespace
// ("net:[4026531840]"), what every thread must point at after a trace.
func netnsLink(t *testing.T) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("read own network namespace: %v", err)
	}
	return l
}

// checkThreadsHome fails unless every thread of the process is in the
// namespace home. A thread whose locked goroutine just ended may still be on
// its way out, so strays get a short grace to exit.
func checkThreadsHome(t *testing.T, home string) {
	t.Helper()
	var strays []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		strays = strays[:0]
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatalf("list threads: %v", err)
		}
		for _, task := range tasks {
			l, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
			if err != nil {
				continue // the thread exited meanwhile
			}
			if l != home {
				strays = append(strays, fmt.Sprintf("thread %s in %s", task.Name(), l))
			}
		}
		if len(strays) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(strays) > 0 {
		t.Errorf("after the trace, threads outside the original namespace %s: %v", home, strays)
	}
}

// pointSpec is where a point is and what the lab says it is.
type pointSpec struct {
	Name, Netns, Ifname string
}

// labPath is the five points of a pod-to-pod trace on one bridge, named as
// pathtrace names them, in path order.
func labPath(l *lab.Lab, from, to lab.Pod) []pointSpec {
	return []pointSpec{
		{from.Name, from.Name, "eth0"},
		{from.Name + "-veth", l.Node, from.HostVeth},
		{from.Bridge, l.Node, from.Bridge},
		{to.Name + "-veth", l.Node, to.HostVeth},
		{to.Name, to.Name, "eth0"},
	}
}

func specNames(ps []pointSpec) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name)
	}
	return s
}

func reverse(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// checkDiscovery compares the discovered points with the kernel: each
// interface exists in the point's namespace with that ifindex and MAC.
func checkDiscovery(t *testing.T, d *liveDoc, want []string) {
	t.Helper()
	if d.Discovery == nil {
		t.Fatal("no \"discovery\" in the JSON")
	}
	var got []string
	for _, p := range d.Discovery.Points {
		got = append(got, p.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("discovery points %v, want %v", got, want)
	}
	for i, p := range d.Discovery.Points {
		link, err := linkIn(p.NetnsPath, p.Interface)
		if err != nil {
			t.Errorf("discovery point %s: %v", p.Name, err)
			continue
		}
		if link.Attrs().Index != p.IfIndex || link.Attrs().HardwareAddr.String() != p.MAC.String() {
			t.Errorf("discovery point %s: %s ifindex %d MAC %s, netlink says ifindex %d MAC %s",
				p.Name, p.Interface, p.IfIndex, p.MAC, link.Attrs().Index, link.Attrs().HardwareAddr)
		}
		if i < len(d.Points) {
			rp := d.Points[i]
			if rp.IfIndex == nil || *rp.IfIndex != p.IfIndex || rp.Interface == nil || *rp.Interface != p.Interface {
				t.Errorf("result point %s: interface %v ifindex %v, discovery says %s %d",
					rp.Name, strPtr(rp.Interface), intPtr(rp.IfIndex), p.Interface, p.IfIndex)
			}
		}
	}
}

func strPtr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func intPtr(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// linkIn looks an interface up by name inside a namespace.
func linkIn(nsPath, name string) (netlink.Link, error) {
	ns, err := netns.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", nsPath, err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s in %s: %w", name, nsPath, err)
	}
	return l, nil
}

// checkNoDrops: every point reports kernel drops, and none.
func checkNoDrops(t *testing.T, d *liveDoc) {
	t.Helper()
	for _, p := range d.Points {
		if p.Coverage.KernelDrops == nil || *p.Coverage.KernelDrops != 0 {
			t.Errorf("point %s: kernel_drops %v, want 0", p.Name, p.Coverage.KernelDrops)
		}
	}
}

// checkEchoes: n requests along fwd and n replies back along the reverse,
// complete, seqs 1..n, one echo id, every reply tied to its request with an
// RTT that adds up.
func checkEchoes(t *testing.T, d *liveDoc, n int, fwd []string) {
	t.Helper()
	checkEchoesFrom(t, d, 1, n, fwd)
}

// checkEchoesFrom is checkEchoes for seqs first..first+n-1 (busybox's ping
// starts at 0).
func checkEchoesFrom(t *testing.T, d *liveDoc, first uint64, n int, fwd []string) {
	t.Helper()
	reqs, reps := d.ofType("echo-request"), d.ofType("echo-reply")
	if len(reqs) != n || len(reps) != n {
		t.Errorf("%d echo requests and %d echo replies, want %d each", len(reqs), len(reps), n)
	}
	var id *uint64
	seqs := map[string][]uint64{}
	for _, set := range []struct {
		trs  []*liveTrace
		path []string
	}{{reqs, fwd}, {reps, reverse(fwd)}} {
		for _, tr := range set.trs {
			if got := tr.points(); !slices.Equal(got, set.path) {
				t.Errorf("trace %s: hops %v, want %v", tr, got, set.path)
			}
			if tr.LostAfter != "" || len(tr.Missing) != 0 {
				t.Errorf("trace %s: lost_after %q missing %v, want complete", tr, tr.LostAfter, tr.Missing)
			}
			if tr.ID == nil || tr.Seq == nil {
				t.Errorf("trace %s: id %v seq %v, want both", tr, tr.ID, tr.Seq)
				continue
			}
			if id == nil {
				id = tr.ID
			} else if *tr.ID != *id {
				t.Errorf("trace %s: echo id %d, earlier traces had %d", tr, *tr.ID, *id)
			}
			seqs[tr.Type] = append(seqs[tr.Type], *tr.Seq)
			checkHopTimes(t, tr)
		}
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = first + uint64(i)
	}
	for typ, s := range seqs {
		slices.Sort(s)
		if !slices.Equal(s, want) {
			t.Errorf("%s seqs %v, want %v", typ, s, want)
		}
	}
	for _, rep := range reps {
		if rep.ReplyTo == nil || rep.RTT == nil {
			t.Errorf("reply %s: reply_to %v rtt %v, want both", rep, intPtr(rep.ReplyTo), rep.RTT)
			continue
		}
		req := d.byN(*rep.ReplyTo)
		if req == nil || req.Type != "echo-request" || req.Seq == nil || rep.Seq == nil || *req.Seq != *rep.Seq {
			t.Errorf("reply %s: reply_to %d is not the request of that seq (%v)", rep, *rep.ReplyTo, req)
			continue
		}
		r := rep.RTT
		if r.TotalNs <= 0 || r.ForwardNs <= 0 || r.TurnaroundNs <= 0 || r.ReverseNs <= 0 ||
			r.ForwardNs+r.TurnaroundNs+r.ReverseNs != r.TotalNs {
			t.Errorf("reply %s: rtt %+v, want positive parts that add up to the total", rep, *r)
		}
		if len(req.Hops) > 0 && len(rep.Hops) > 0 {
			want := hopNs(t, &rep.Hops[len(rep.Hops)-1]) - hopNs(t, &req.Hops[0])
			if r.TotalNs != want {
				t.Errorf("reply %s: rtt total %d, hop stamps give %d", rep, r.TotalNs, want)
			}
		}
	}
}

// checkHopTimes: stamps never go back along the path and delta_ns is the
// difference to the previous hop.
func checkHopTimes(t *testing.T, tr *liveTrace) {
	t.Helper()
	for i := 1; i < len(tr.Hops); i++ {
		d := hopNs(t, &tr.Hops[i]) - hopNs(t, &tr.Hops[i-1])
		if d < 0 || tr.Hops[i].DeltaNs != d {
			t.Errorf("trace %s: hop %s delta_ns %d, stamps give %d", tr, tr.Hops[i].Point, tr.Hops[i].DeltaNs, d)
		}
	}
}

var tcpdumpNoDrops = regexp.MustCompile(`(?m)^0 packets dropped by kernel$`)

// packetSocketsArmed counts packet sockets bound to ifindex with a protocol
// (bound for capture) in the namespace at nsPath, from its /proc/net/packet.
func packetSocketsArmed(nsPath string, ifindex int) (int, error) {
	ns, err := netns.Open(nsPath)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	var b []byte
	if err := netns.Do(ns, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/packet")
		return err
	}); err != nil {
		return 0, fmt.Errorf("read packet sockets in %s: %w", nsPath, err)
	}
	n := 0
	lines := strings.Split(string(b), "\n")
	for _, l := range lines[1:] {
		// sk RefCnt Type Proto Iface R Rmem User Inode
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		if f[3] != "0000" && f[4] == strconv.Itoa(ifindex) {
			n++
		}
	}
	return n, nil
}
