package e2e

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// A policy on the destination's node is where probes most often die: its
// agent (no probes of its own) watches the kernel's drops between the two
// endpoints, records them in its path.pcapng, and `analyze nodeA/ nodeB/`
// puts the reason and the nftables rule on the probe that was lost there.
func TestCaptureDropOnDestinationNode(t *testing.T) {
	testenv.RequireRoot(t)
	l := lab.UpNodesT(t, "agd", lab.NodesConfig{Backend: lab.BackendVXLAN})
	a, b := l.Nodes[0], l.Nodes[1]
	p1, p2 := l.Pods[0], l.Pods[1]
	keepRulesets(t, &lab.Lab{Node: b.Name, Pods: []lab.Pod{p2}})
	ctx, cancel := context.WithCancel(traceCtx(t))
	defer cancel()
	nftTable(t, ctx, p2.Name, "inet", "deny", " chain input {\n  type filter hook input priority 0;\n  icmp type echo-request icmp sequence 2 drop comment \"deny seq 2\"\n }")
	rule := listedRule(t, ctx, p2.Name, "inet", "deny", "input")
	dirA, dirB := filepath.Join(t.TempDir(), "nodeA"), filepath.Join(t.TempDir(), "nodeB")

	unhideA := hideNow(t, a.Name, p1.Name)
	bCtx, stopB := context.WithCancel(ctx)
	defer stopB()
	// Its armed line, not its sockets: the line comes once the drop
	// watcher (eBPF program, nft trace tables) is ready too.
	errB := &syncBuffer{}
	doneB := make(chan int, 1)
	go func() {
		doneB <- runIO(bCtx, []string{"capture", "--src", p1.IP.String(), "--dst", p2.Name, "--duration", "0", "--out", dirB}, io.Discard, errB)
	}()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(errB.String(), "pathtrace capture: armed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nodeB's capture not armed after 20 s: %s", errB.String())
		}
	}
	unhideA()
	unhideB := hideNow(t, b.Name, p2.Name)
	ra := runTrace(t, ctx, "capture", "--src", p1.Name, "--dst", p2.IP.String(), "--probe", "-c", "4", "-i", "100ms", "--out", dirA, "-f", "json", "-q")
	unhideB()
	time.Sleep(200 * time.Millisecond) // the last replies reach nodeB's rings
	stopB()
	if codeB := <-doneB; ra.Code != exitFindings || codeB != exitInterrupted {
		t.Fatalf("nodeA's capture: exit %d, want %d (a probe unanswered); nodeB's: exit %d, want %d\n%s\nnodeB: %s",
			ra.Code, exitFindings, codeB, exitInterrupted, ra.describe(), errB.String())
	}
	// (The lab's two nodes share one kernel: nodeA's agent sees the drop
	// too, in a namespace it cannot name. On two hosts it would not.)

	d := analyzeAgentsFindings(t, dirA, dirB)
	var dropped int
	for _, tr := range d.Traces {
		if tr.Type != "echo-request" || tr.Seq == nil {
			continue
		}
		switch {
		case *tr.Seq == 2 && tr.Drop == nil:
			t.Errorf("echo request seq 2: no drop; want the rule in %s", p2.Name)
		case *tr.Seq == 2:
			dropped++
			if tr.Drop.Reason != "NETFILTER_DROP" || tr.Drop.Netns != p2.Name || tr.Drop.Interface != "eth0" || tr.Drop.Rule != rule {
				t.Errorf("seq 2 drop %+v, want NETFILTER_DROP in %s on eth0, rule %q", tr.Drop, p2.Name, rule)
			}
		case tr.Drop != nil:
			t.Errorf("echo request seq %d (answered) carries a drop: %+v", *tr.Seq, tr.Drop)
		}
	}
	if dropped != 1 || !strings.Contains(d.Summary.Verdict, "dropped by the kernel: NETFILTER_DROP") || !strings.Contains(d.Summary.Verdict, "deny seq 2") {
		t.Errorf("%d dropped requests, verdict %q; want seq 2's drop and its rule in the verdict", dropped, d.Summary.Verdict)
	}
	checkNoTraceTables(t, &lab.Lab{Node: b.Name, Pods: []lab.Pod{p2}})
}

// analyzeAgentsFindings is analyzeAgents for agents' captures with a
// finding (exit 1).
func analyzeAgentsFindings(t *testing.T, args ...string) *mergedDoc {
	t.Helper()
	code, out, errb := runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, args...)...)
	if code != exitFindings {
		t.Fatalf("analyze %v: exit %d, want %d: %s\n%.3000s", args, code, exitFindings, errb, out)
	}
	return decodeMerged(t, out)
}
