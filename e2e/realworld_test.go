package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestAnalyzeRunsThatShareNothing: pod1's capture from one run of the lab
// and pod1-veth's from another share no frame: a no-shared-frames warning
// naming both, in the verdict, and no loss between them.
func TestAnalyzeRunsThatShareNothing(t *testing.T) {
	a := filepath.Join(testenv.Captures(t, "seed"), "pod1.cap")
	b := filepath.Join(testenv.Captures(t, "promisc"), "pod1-veth.cap")
	code, out, errb := runCLI(t, "analyze", "-q", "-f", "json", "pod1="+a, "pod1-veth="+b)
	if code != exitFindings {
		t.Fatalf("exit %d: %s", code, errb)
	}
	r := decodeResult(t, out)
	if an := findAnomaly(r, "no-shared-frames", "pod1 and pod1-veth"); an == nil || an.Severity != "warning" {
		t.Fatalf("anomalies %+v", r.Anomalies)
	}
	if r.Summary.Lost != 0 || !strings.Contains(r.Summary.Verdict, "pod1 and pod1-veth share no frame: not captured at the same time, or not on one path") {
		t.Fatalf("summary %+v", r.Summary)
	}
	for _, a := range r.Anomalies {
		if a.Kind == "duplicate" || a.Kind == "loss" {
			t.Errorf("anomaly %+v between captures that share nothing", a)
		}
	}
}

// TestAnalyzeParallelPingsLive: two pings from pod1 to pod2 at once with
// 8-byte payloads (no timestamp: the same payload and seqs), captured by
// tcpdump at the five points: every frame joins its own ping's trace, none
// is a duplicate, all twenty traces are complete.
func TestAnalyzeParallelPingsLive(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "tcpdump", "ping")
	cfg := uniqueLab(t, "pp", 70)
	l := e2eUp(t, cfg)
	p1, p2 := l.Pods[0], l.Pods[1]
	pts := labPath(l, p1, p2)
	dir := t.TempDir()
	tds := startTcpdump(t, dir, pts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := inNetns(ctx, p1.Name, "ping", "-n", "-q", "-s", "8", "-c", "5", "-i", "0.2", p2.IP.String())
	b := inNetns(ctx, p1.Name, "ping", "-n", "-q", "-s", "8", "-c", "5", "-i", "0.2", p2.IP.String())
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, b)
	a.Wait()
	time.Sleep(300 * time.Millisecond)
	stopTcpdump(t, tds)
	args := []string{"analyze", "-q", "-f", "json"}
	for _, td := range tds {
		args = append(args, td.point.Name+"="+td.file)
	}
	code, out, errb := runCLI(t, args...)
	r := decodeResult(t, out)
	if code != exitOK {
		t.Fatalf("exit %d: %s\nverdict: %s\nanomalies: %+v", code, errb, r.Summary.Verdict, r.Anomalies)
	}
	ids := map[uint64]int{}
	for _, tr := range r.Traces {
		if tr.Protocol != "icmp" {
			continue
		}
		if len(tr.Flags) != 0 || len(tr.Hops) != 5 || tr.ID == nil {
			t.Errorf("trace %d %s seq %v: %d hops, flags %v", tr.N, tr.Type, tr.Seq, len(tr.Hops), tr.Flags)
			continue
		}
		ids[*tr.ID]++
	}
	if len(ids) != 2 {
		t.Fatalf("echo ids %v, want two pings of 10 traces each", ids)
	}
	for id, n := range ids {
		if n != 10 {
			t.Errorf("id %#x: %d traces, want 10", id, n)
		}
	}
}

// TestAnalyzeOffPathLive: captures at pod1 and pod2 while pod1 pings pod2
// and, beside it, talks TCP to its gateway (the node): that conversation
// never reaches pod2. Its traces are off-path, not lost; the echoes are
// complete; the verdict is OK and counts the off-path flow.
func TestAnalyzeOffPathLive(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "tcpdump", "ping", "socat")
	cfg := uniqueLab(t, "op", 70)
	l := e2eUp(t, cfg)
	p1, p2 := l.Pods[0], l.Pods[1]
	pts := []pointSpec{{p1.Name, p1.Name, "eth0"}, {p2.Name, p2.Name, "eth0"}}
	dir := t.TempDir()
	tds := startTcpdumpFilter(t, dir, pts, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gw := cfg.Subnet.Addr().Next().String() // the bridge: the pods' gateway on the node
	srv := inNetns(ctx, l.Node, "socat", "-u", "TCP-LISTEN:9000,bind="+gw+",reuseaddr", "OPEN:/dev/null")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	ping := inNetns(ctx, p1.Name, "ping", "-n", "-q", "-c", "3", "-i", "0.2", p2.IP.String())
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, inNetns(ctx, p1.Name, "sh", "-c", "head -c 20000 /dev/zero | socat -u - TCP:"+gw+":9000"))
	ping.Wait()
	srv.Wait()
	time.Sleep(300 * time.Millisecond)
	stopTcpdump(t, tds)
	code, out, errb := runCLI(t, "analyze", "-q", "-f", "json", p1.Name+"="+tds[0].file, p2.Name+"="+tds[1].file)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%.4000s", code, errb, out)
	}
	r := decodeResult(t, out)
	tcp := 0
	for _, tr := range r.Traces {
		switch tr.Protocol {
		case "tcp":
			tcp++
			if tr.LostAfter != "" || len(tr.Hops) != 1 {
				t.Errorf("tcp trace %d: lost_after %q, %d hops", tr.N, tr.LostAfter, len(tr.Hops))
			}
		case "icmp":
			if len(tr.Hops) != 2 || tr.LostAfter != "" {
				t.Errorf("echo trace %d: %d hops, lost_after %q", tr.N, len(tr.Hops), tr.LostAfter)
			}
		}
	}
	if tcp < 4 || r.Summary.OffPath < tcp || r.Summary.OffPathFlows < 1 || r.Summary.Lost != 0 ||
		!strings.HasPrefix(r.Summary.Verdict, "OK: ") || !strings.Contains(r.Summary.Verdict, "seen at one point only, not on the path between the points") {
		t.Fatalf("%d tcp traces; summary %+v", tcp, r.Summary)
	}
}
