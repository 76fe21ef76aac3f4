package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/cli"
	"github.com/pathtrace/pathtrace/internal/iostreams"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// Agent mode on the two-node lab: `pathtrace capture` on each node with the
// other node's namespaces out of sight (as if it were another machine),
// nodeA sending the probes, nodeB listening; nodeB's evidence shifted by
// editcap (+16 ms, a clock of its own); `analyze nodeA/ nodeB/` against a
// live run across both nodes that saw the same frames at the same points
// (everything visible, started first, on one clock).

const agentShift = 16 * time.Millisecond

func TestCaptureAcrossNodes(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "editcap")
	for _, c := range []struct {
		name    string
		backend lab.Backend
		stream  bool // nodeB's capture through --out - (as kubectl exec reads it)
	}{
		{"vxlan", lab.BackendVXLAN, false},
		{"ipip", lab.BackendIPIP, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := lab.UpNodesT(t, "ag", lab.NodesConfig{Backend: c.backend})
			r := agentRuns(t, l, c.stream)
			checkAgentEvidence(t, l, r)
			merged := analyzeAgents(t, r.dirA, r.shiftedB)
			compareMerged(t, r.live, merged)
			checkMergedHTML(t, merged, r)
			checkAlone(t, l, r)
			checkWrongPair(t, l, r)
		})
	}
}

// agentRun is what the three runs left: the live run's document, each
// agent's folder (nodeB's also shifted), nodeA's own document.
type agentRun struct {
	live     *liveDoc
	a        *liveDoc
	dirA     string
	dirB     string // nodeB's evidence as captured
	shiftedB string // nodeB's path.pcapng shifted by agentShift, alone in a folder
	stream   string // nodeB's stream, when it was streamed
}

// agentRuns: the live run first (everything visible), then nodeB's agent
// with nodeA out of sight, then nodeA's with nodeB out of sight, probing;
// nodeB's agent and the live run are stopped (Ctrl-C) once nodeA's is done.
func agentRuns(t *testing.T, l *lab.Lab, stream bool) *agentRun {
	a, b := l.Nodes[0], l.Nodes[1]
	p1, p2 := l.Pods[0], l.Pods[1]
	points := nodesPath(l)
	r := &agentRun{dirA: filepath.Join(t.TempDir(), "nodeA"), dirB: filepath.Join(t.TempDir(), "nodeB")}
	ctx, cancel := context.WithCancel(traceCtx(t))
	defer cancel()
	wait := startTrace(t, ctx, "--src", p1.Name, "--dst", p2.Name, "--passive", "--duration", "60s", "-f", "json", "-q", "--ring-size", "4M")
	waitSockets(t, points, 1)

	unhideA := hideNow(t, a.Name, p1.Name)
	bArgs := []string{"capture", "--src", p1.IP.String(), "--dst", p2.Name, "--duration", "0", "--out", r.dirB, "-q"}
	var streamed *os.File
	var bOut io.Writer // nil: startTrace's own buffer
	if stream {
		r.stream = filepath.Join(t.TempDir(), "nodeB.pcapng")
		f, err := os.Create(r.stream)
		if err != nil {
			t.Fatal(err)
		}
		streamed, bOut = f, f
		bArgs = []string{"capture", "--src", p1.IP.String(), "--dst", p2.Name, "--duration", "0", "--out", "-"}
	}
	bCtx, stopB := context.WithCancel(ctx)
	defer stopB()
	waitB := startCapture(t, bCtx, bOut, bArgs...)
	waitSockets(t, points[5:], 2)
	// The source's node probes; the destination's may not.
	if code, _, errb := runCLI(t, "capture", "--src", p1.IP.String(), "--dst", p2.Name, "--probe", "--out", t.TempDir()); code != exitUsage ||
		!strings.Contains(errb, "--probe: probes leave from the source") || !oneLineErr(errb) {
		t.Errorf("--probe on the destination's node: exit %d, %q", code, errb)
	}
	unhideA()

	unhideB := hideNow(t, b.Name, p2.Name)
	ra := runTrace(t, ctx, "capture", "--src", p1.Name, "--dst", p2.IP.String(), "--probe", "-c", "5", "-i", "100ms",
		"--out", r.dirA, "-f", "json", "-q")
	unhideB()
	time.Sleep(200 * time.Millisecond) // the last replies reach every point's ring
	stopB()
	rb := waitB()
	cancel()
	live := wait()
	if ra.Code != exitOK || ra.Doc == nil {
		t.Fatalf("nodeA's capture: exit %d, want 0\n%s", ra.Code, ra.describe())
	}
	if rb.Code != exitInterrupted {
		t.Fatalf("nodeB's capture stopped by Ctrl-C: exit %d, want %d\n%s", rb.Code, exitInterrupted, rb.describe())
	}
	if live.Code != exitInterrupted || live.Doc == nil {
		t.Fatalf("the live run: exit %d, want %d\n%s", live.Code, exitInterrupted, live.describe())
	}
	r.live, r.a = live.Doc, ra.Doc
	if stream {
		if err := streamed.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(r.dirB, 0o700); err != nil {
			t.Fatal(err)
		}
		copyFile(t, r.stream, filepath.Join(r.dirB, "path.pcapng"))
	}
	r.shiftedB = filepath.Join(t.TempDir(), "nodeB")
	if err := os.Mkdir(r.shiftedB, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("editcap", "-t", fmt.Sprintf("%.6f", agentShift.Seconds()),
		filepath.Join(r.dirB, "path.pcapng"), filepath.Join(r.shiftedB, "path.pcapng"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v\n%s", err, out)
	}
	return r
}

// checkAgentEvidence: each agent's folder is the tracer's evidence of its
// node's five points, and its path.pcapng records the run.
func checkAgentEvidence(t *testing.T, l *lab.Lab, r *agentRun) {
	t.Helper()
	p1, p2 := l.Pods[0], l.Pods[1]
	tun := l.Nodes[0].Tunnel
	wantA := []string{p1.Name, p1.Name + "-veth", l.Nodes[0].Bridge, tun, "eth0"}
	if got := r.a.pointNames(); !slices.Equal(got, wantA) {
		t.Errorf("nodeA's points %v, want %v", got, wantA)
	}
	checkEchoes(t, r.a, 5, wantA)
	if r.stream == "" {
		for _, f := range []string{"path.pcapng", "report.json", "report.md", "report.html", p2.Name + ".cap", "eth0.cap"} {
			if _, err := os.Stat(filepath.Join(r.dirB, f)); err != nil {
				t.Errorf("nodeB's evidence: %v", err)
			}
		}
	}
	for dir, want := range map[string]string{
		r.dirA: fmt.Sprintf(`"node":%q,"local":"src","src":%q,"dst":%q`, l.Nodes[0].Name, p1.IP, p2.IP),
		r.dirB: fmt.Sprintf(`"node":%q,"local":"dst","src":%q,"dst":%q`, l.Nodes[1].Name, p1.IP, p2.IP),
	} {
		out := mustRun(t, exec.Command("capinfos", "-k", filepath.Join(dir, "path.pcapng")))
		if !strings.Contains(out, "pathtrace agent: ") || !strings.Contains(out, want) {
			t.Errorf("%s/path.pcapng: no agent record with %s:\n%s", dir, want, out)
		}
	}
	if r.a.Live == nil || r.a.Live.EchoID == nil {
		t.Fatal("nodeA's run has no echo id")
	}
	out := mustRun(t, exec.Command("capinfos", "-k", filepath.Join(r.dirA, "path.pcapng")))
	if want := fmt.Sprintf(`"echo_id":%d,"probes":5`, *r.a.Live.EchoID); !strings.Contains(out, want) {
		t.Errorf("nodeA's record lacks %s:\n%s", want, out)
	}
}

// mergedDoc is analyze's JSON with the clock offsets.
type mergedDoc struct {
	jResult
	ClockOffsets []jClockOffset `json:"clock_offsets"`
}

func analyzeAgents(t *testing.T, args ...string) *mergedDoc {
	t.Helper()
	code, out, errb := runCLI(t, append([]string{"analyze", "-q", "-f", "json"}, args...)...)
	if code != exitOK {
		t.Fatalf("analyze %v: exit %d, want 0: %s\n%.3000s", args, code, errb, out)
	}
	return decodeMerged(t, out)
}

func decodeMerged(t *testing.T, out string) *mergedDoc {
	t.Helper()
	var d mergedDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// TestCaptureUsageErrors: agent mode's flags that contradict each other,
// or put something else where --out - streams, are refused in one line
// with exit status 2 before anything is resolved or captured.
func TestCaptureUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dst", "pod2", "--out", "d"}, "give both --src and --dst"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3"}, "give --out DIR"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "-", "-f", "json"}, "--out - writes the capture to stdout, so --format has nowhere to go"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "-", "--detail"}, "so --detail has nowhere to go"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "-", "--force"}, "so --force has nowhere to go"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "d", "-c", "5", "--size", "100"}, "--count, --size shape probes, and without --probe"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "d", "--probe", "--duration", "5s"}, "--duration is the capture time without --probe"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "d", "--probe", "-c", "0"}, "--count 0: want 1 to 65535"},
		{[]string{"--src", "pod1", "--dst", "10.1.2.3", "--out", "d", "--duration", "-1s"}, "must not be negative"},
	} {
		code, out, errb := runCLI(t, append([]string{"capture"}, c.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errb, c.want) || !oneLineErr(errb) {
			t.Errorf("capture %v: exit %d, stderr %q, stdout %q; want %d and %q in one line", c.args, code, errb, out, exitUsage, c.want)
		}
	}
	ios, _, out, errb := iostreams.Test()
	ios.SetStdoutTTY(true)
	if code := cli.Run(context.Background(), []string{"capture", "--src", "pod1", "--dst", "10.1.2.3", "--out", "-"}, ios); code != exitUsage ||
		out.Len() != 0 || !strings.Contains(errb.String(), "which is a terminal") {
		t.Errorf("--out - to a terminal: exit %d, stderr %q", code, errb)
	}
}

// checkMergedHTML: the page of the merged analysis names each node over
// its lanes (as many bands as the JSON has nodes) and gives nodeB's
// estimated clock.
func checkMergedHTML(t *testing.T, merged *mergedDoc, r *agentRun) {
	t.Helper()
	code, page, errb := runCLI(t, "analyze", "-q", "-f", "html", r.dirA, r.shiftedB)
	if code != exitOK {
		t.Fatalf("analyze -f html: exit %d: %s", code, errb)
	}
	var nodes []string
	for _, p := range merged.Points {
		if !slices.Contains(nodes, p.Node) {
			nodes = append(nodes, p.Node)
		}
	}
	if len(nodes) != 2 || strings.Count(page, `<rect class="nodeband"`) != 2 {
		t.Errorf("nodes %v; %d node bands in the page, want one per node", nodes, strings.Count(page, `<rect class="nodeband"`))
	}
	for _, n := range nodes {
		if !strings.Contains(page, "<title>node "+n+"</title>") {
			t.Errorf("the page names no node %s over its lanes", n)
		}
	}
	clock := regexp.MustCompile("Clocks: " + regexp.QuoteMeta(nodes[0]+": the reference; "+nodes[1]+": &#43;") + `(15\.99\d|16\.00\d) ms ± `)
	if !clock.MatchString(page) {
		t.Errorf("the page does not give %s's clock as about +16 ms", nodes[len(nodes)-1])
	}
}
