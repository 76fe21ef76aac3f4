package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
)

// Live tracer tests: they build labs in network namespaces of their own,
// trace with the real kernel and compare with netlink, tcpdump and tshark.

func traceCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The seed's story on the lab: five probes, every one seen at all five points
// both ways, nothing dropped by the kernel, discovery agreeing with netlink.
func TestTraceLab(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	path := specNames(labPath(l, l.Pods[0], l.Pods[1]))

	r := runTrace(t, traceCtx(t), "--src", cfg.Prefix+"pod1", "--dst", cfg.Prefix+"pod2", "-c", "5", "-f", "json")
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	d := r.Doc
	if got := d.pointNames(); !slices.Equal(got, path) {
		t.Fatalf("points %v, want %v", got, path)
	}
	checkEchoes(t, d, 5, path)
	checkNoDrops(t, d)
	checkDiscovery(t, d, path)
	if d.Live == nil || d.Live.Probes != 5 || d.Live.Sent != 5 || d.Live.Replies != 5 || d.Live.Interrupted {
		t.Errorf("live %+v, want 5 probes sent and answered", d.Live)
	}
	if !d.Summary.Clean {
		t.Errorf("summary %+v, want clean", d.Summary)
	}
	// The probes are the only ICMP: every echo carries the run's id.
	if got := len(d.ofType("echo-request")) + len(d.ofType("echo-reply")); got != d.Summary.ByProto["icmp"] {
		t.Errorf("%d echo traces, summary counts %d ICMP traces", got, d.Summary.ByProto["icmp"])
	}
}

// A node wired by the real CNI bridge plugin with Flannel's config: random
// veth names found by discovery alone, by namespace name and by IP, without
// `ip` or `tcpdump` to lean on.
func TestTraceCNINode(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		testenv.SkipOrFail(t, "no CNI bridge plugin: %v", err)
	}
	cfg := e2eConfig(t)
	l := cniUp(t, cfg, 3)
	if len(l.Pods) != 3 {
		t.Fatalf("CNI node has %d pods, want 3: %v", len(l.Pods), l)
	}
	p1, p2, p3 := l.Pods[0], l.Pods[1], l.Pods[2]
	path := specNames(labPath(l, p1, p2))

	t.Setenv("PATH", t.TempDir()) // nothing to exec: pathtrace must use netlink and AF_PACKET only
	for _, ends := range [][2]string{{p1.Name, p2.Name}, {p1.IP.String(), p2.IP.String()}} {
		t.Run("by "+map[bool]string{true: "ip", false: "name"}[ends[0] == p1.IP.String()], func(t *testing.T) {
			r := runTrace(t, traceCtx(t), "--src", ends[0], "--dst", ends[1], "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
			if r.Code != exitOK || r.Doc == nil {
				t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
			}
			d := r.Doc
			if got := d.pointNames(); !slices.Equal(got, path) {
				t.Fatalf("points %v, want %v", got, path)
			}
			checkEchoes(t, d, 3, path)
			checkDiscovery(t, d, path)
			for _, p := range d.Discovery.Points {
				if p.Interface == p3.HostVeth || strings.HasPrefix(p.Name, p3.Name) {
					t.Errorf("the third pod's veth %s is a point: %+v", p3.HostVeth, p)
				}
			}
			if d.Discovery.Points[1].Interface != p1.HostVeth || d.Discovery.Points[3].Interface != p2.HostVeth {
				t.Errorf("veth points %s, %s; the CNI plugin made %s, %s", d.Discovery.Points[1].Interface,
					d.Discovery.Points[3].Interface, p1.HostVeth, p2.HostVeth)
			}
		})
	}
}

// pathtrace's stamps against tcpdump's at the same five points: the same
// echoes everywhere and stamps within 10 µs.
func TestTraceAgainstTcpdump(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "tcpdump", "tshark")
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	points := labPath(l, l.Pods[0], l.Pods[1])
	dir := t.TempDir()
	tds := startTcpdump(t, dir, points)

	ctx := traceCtx(t)
	args := []string{"--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "5", "-i", "100ms", "--timeout", "500ms", "-f", "json"}
	outDir := filepath.Join(dir, "evidence")
	r := runTrace(t, ctx, append(args, "--out", outDir)...)
	evidence := true
	if r.Code == exitUsage && strings.Contains(r.Stderr, "evidence writers not built yet") {
		t.Log("--out: evidence writers not built yet; comparing tcpdump with the JSON hop stamps only")
		evidence = false
		r = runTrace(t, ctx, args...)
	}
	stopTcpdump(t, tds)
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	if !evidence {
		outDir = ""
	}
	checkAgainstTcpdump(t, r.Doc, points, tds, outDir)
}

// Passive mode correlates the user's own ping.
func TestTracePassivePing(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "ping")
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	points := labPath(l, l.Pods[0], l.Pods[1])
	ctx := traceCtx(t)

	wait := startTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "--passive", "--duration", "3s", "-f", "json")
	// Armed: a bound capture socket on each point's interface.
	start := time.Now()
	deadline := start.Add(2 * time.Second)
	for _, p := range points {
		link, err := linkIn("/run/netns/"+p.Netns, p.Ifname)
		if err != nil {
			t.Error(err)
			break
		}
		for {
			n, err := packetSocketsArmed("/run/netns/"+p.Netns, link.Attrs().Index)
			if err != nil {
				t.Error(err)
				break
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("no capture socket seen on %s after 2s; pinging anyway", p.Name)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("capture sockets bound at every point after %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond) // filters attach after bind
	ping := inNetns(ctx, l.Pods[0].Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", l.Pods[1].IP.String())
	out, perr := ping.CombinedOutput()
	r := wait() // before any Fatal: the capture must end before the lab goes
	if perr != nil {
		t.Fatalf("ping: %v\n%s", perr, out)
	}
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	checkEchoes(t, r.Doc, 3, specNames(points))
	if r.Doc.Live == nil || r.Doc.Live.Sent != 0 {
		t.Errorf("live %+v: passive mode must send nothing", r.Doc.Live)
	}
}

// The routed path across two bridges: the node rewrites both MACs and
// decrements the TTL where the frame is first seen past the router.
func TestTraceRouted(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	cfg.Routed = true
	l := e2eUp(t, cfg)
	if len(l.Pods) != 3 || l.Pods[2].Bridge != "cni1" {
		t.Fatalf("routed lab %v", l)
	}
	p1, p3 := l.Pods[0], l.Pods[2]
	path := []string{p1.Name, p1.Name + "-veth", "cni0", "cni1", p3.Name + "-veth", p3.Name}

	r := runTrace(t, traceCtx(t), "--src", p1.Name, "--dst", p3.Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	d := r.Doc
	if got := d.pointNames(); !slices.Equal(got, path) {
		t.Fatalf("points %v, want %v", got, path)
	}
	checkEchoes(t, d, 3, path)
	checkDiscovery(t, d, path)
	mac := map[string]string{}
	for _, p := range d.Discovery.Points {
		mac[p.Name] = p.MAC.String()
	}
	want := map[string][]jRewrite{
		"echo-request": {
			{"cni1", "src_mac", p1.MAC, mac["cni1"]},
			{"cni1", "dst_mac", mac["cni0"], p3.MAC},
			{"cni1", "ttl", "64", "63"},
		},
		"echo-reply": {
			{"cni0", "src_mac", p3.MAC, mac["cni0"]},
			{"cni0", "dst_mac", mac["cni1"], p1.MAC},
			{"cni0", "ttl", "64", "63"},
		},
	}
	for typ, rw := range want {
		for _, tr := range d.ofType(typ) {
			if !slices.Equal(tr.Rewrites, rw) {
				t.Errorf("trace %s: rewrites %+v, want %+v", tr, tr.Rewrites, rw)
			}
		}
	}
}

// A drop in the bridge's forward hook: the requests reach cni0 and vanish.
func TestTraceBridgeDrop(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "nft")
	cfg := e2eConfig(t)
	l := e2eUp(t, cfg)
	ctx := traceCtx(t)
	for _, rule := range [][]string{
		{"add", "table", "bridge", "pt"},
		{"add", "chain", "bridge", "pt", "forward", "{ type filter hook forward priority 0; }"},
		{"add", "rule", "bridge", "pt", "forward", "ip", "daddr", l.Pods[1].IP.String(), "icmp", "type", "echo-request", "drop"},
	} {
		mustRun(t, inNetns(ctx, l.Node, append([]string{"nft"}, rule...)...))
	}
	path := specNames(labPath(l, l.Pods[0], l.Pods[1]))

	r := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	if r.Code != exitFindings || r.Doc == nil {
		t.Fatalf("exit %d, want 1\n%s", r.Code, r.describe())
	}
	d := r.Doc
	reqs := d.ofType("echo-request")
	if len(reqs) != 3 || len(d.ofType("echo-reply")) != 0 {
		t.Fatalf("%d echo requests and %d replies, want 3 and 0", len(reqs), len(d.ofType("echo-reply")))
	}
	var lost []int
	for _, tr := range reqs {
		if got := tr.points(); !slices.Equal(got, path[:3]) {
			t.Errorf("trace %s: hops %v, want %v", tr, got, path[:3])
		}
		if tr.LostAfter != "cni0" {
			t.Errorf("trace %s: lost_after %q missing %v, want lost after cni0", tr, tr.LostAfter, tr.Missing)
		}
		lost = append(lost, tr.N)
	}
	a := d.anomaly("loss", "cni0")
	if a == nil || a.Severity != "warning" || a.Count != len(lost) || !slices.Equal(a.Traces, lost) {
		t.Errorf("loss anomaly at cni0: %+v, want a warning for traces %v", a, lost)
	}
	if d.Live == nil || d.Live.Sent != 3 || d.Live.Replies != 0 {
		t.Errorf("live %+v, want 3 sent and no replies", d.Live)
	}

	// The same drop as a page: a lane per point, a cross per lost request.
	h := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "html")
	lanes, crosses := strings.Count(h.Stdout, `<line class="lane"`), strings.Count(h.Stdout, `class="lost"`)
	if h.Code != exitFindings || lanes != len(path) || crosses != 3 {
		t.Errorf("-f html: exit %d, %d lanes, %d lost crosses; want 1, %d, 3", h.Code, lanes, crosses, len(path))
	}
}

const e2eChildEnv = "PATHTRACE_E2E_CHILD"

// The node in pathtrace's own namespace: a child in a fresh namespace builds
// the lab there (never in the machine's root namespace) and traces.
func TestTraceNodeInCurrent(t *testing.T) {
	if spec := os.Getenv(e2eChildEnv); spec != "" {
		nodeInCurrentChild(t, spec)
		return
	}
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	t.Cleanup(func() {
		// The child's namespace took the bridge with it; this removes the pods if it died.
		if err := lab.Down(lab.Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	out := filepath.Join(t.TempDir(), "trace.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTraceNodeInCurrent$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%s", e2eChildEnv, cfg.Prefix, cfg.Subnet, out))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("child's JSON: %v\n%s", err, b)
	}
	var d liveDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode child's JSON: %v\n%.3000s", err, raw)
	}
	path := []string{cfg.Prefix + "pod1", cfg.Prefix + "pod1-veth", "cni0", cfg.Prefix + "pod2-veth", cfg.Prefix + "pod2"}
	if got := d.pointNames(); !slices.Equal(got, path) {
		t.Fatalf("points %v, want %v", got, path)
	}
	checkEchoes(t, &d, 3, path)
	if d.Summary.Complete != d.Summary.Traces || !d.Summary.Clean {
		t.Errorf("summary %+v, want every trace complete", d.Summary)
	}
}

// nodeInCurrentChild runs in the child's own namespace.
func nodeInCurrentChild(t *testing.T, spec string) {
	f := strings.Split(spec, ",")
	if len(f) != 3 {
		t.Fatalf("%s=%q", e2eChildEnv, spec)
	}
	cfg := lab.Config{Prefix: f[0], Subnet: netip.MustParsePrefix(f[1]), NodeInCurrent: true}
	root, err := os.Readlink("/proc/1/ns/net")
	if err == nil && root == netnsLink(t) {
		t.Fatal("child runs in the root network namespace; refusing to build a node here")
	}
	l := e2eUp(t, cfg)
	if l.Node != "" {
		t.Fatalf("lab node %q, want the current namespace", l.Node)
	}
	r := runTrace(t, traceCtx(t), "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	if err := os.WriteFile(f[2], []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.Code != exitOK {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
}

// A wrong endpoint is a usage error with one line saying how to give one.
func TestTraceBadEndpoint(t *testing.T) {
	testenv.RequireRoot(t)
	r := runTrace(t, traceCtx(t), "--src", "nosuchns-xyz", "--dst", "nosuchns-xyz2", "-f", "json")
	if r.Code != exitUsage {
		t.Errorf("exit %d, want 2", r.Code)
	}
	if r.Stdout != "" {
		t.Errorf("stdout %q, want nothing", r.Stdout)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(r.Stderr, "\n") {
		t.Fatalf("stderr has %d lines, want one:\n%s", len(lines), r.Stderr)
	}
	for _, w := range []string{"nosuchns-xyz", "netns name", "path", "PID", "IP address"} {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr %q does not mention %q", lines[0], w)
		}
	}
}

// lab up|status|down in-process.
func TestLabCommands(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := e2eConfig(t)
	t.Cleanup(func() { lab.Down(cfg) })
	flags := []string{"--prefix", cfg.Prefix, "--subnet", cfg.Subnet.String()}
	code, out, errs := runCLI(t, append([]string{"lab", "up", "--json"}, flags...)...)
	if code != exitOK {
		t.Fatalf("lab up: exit %d: %s", code, errs)
	}
	var l lab.Lab
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("lab up --json: %v\n%s", err, out)
	}
	if l.Node != cfg.Prefix+"node1" || len(l.Pods) != 2 || l.Pods[0].Name != cfg.Prefix+"pod1" ||
		!cfg.Subnet.Contains(l.Pods[1].IP) {
		t.Errorf("lab up --json: %+v", l)
	}
	if _, err := linkIn(l.Pods[0].Netns, "eth0"); err != nil {
		t.Errorf("after lab up: %v", err)
	}
	code, out, errs = runCLI(t, append([]string{"lab", "status"}, flags...)...)
	if code != exitOK || !strings.Contains(out, l.Pods[1].HostVeth) {
		t.Errorf("lab status: exit %d, %q %q; want 0 and the lab", code, out, errs)
	}
	code, out, errs = runCLI(t, append([]string{"lab", "down"}, flags...)...)
	if code != exitOK || !strings.Contains(out, "removed") {
		t.Errorf("lab down: exit %d, %q %q", code, out, errs)
	}
	for _, p := range l.Pods {
		if _, err := os.Stat(p.Netns); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after lab down, %s: %v", p.Netns, err)
		}
	}
	// No lab is a finding (exit 1, "no lab"), not a usage error.
	code, out, errs = runCLI(t, append([]string{"lab", "status"}, flags...)...)
	if code != exitFindings || !strings.Contains(out, "no lab") {
		t.Errorf("lab status without a lab: exit %d, stdout %q, stderr %q; want exit 1 and \"no lab\"", code, out, errs)
	}
}

// checkAgainstTcpdump compares the five echo requests and replies of a
// run (JSON hop stamps, and the evidence pcaps in outDir unless "") with
// what tcpdump saw at the same points: the same frames, stamps within 10 µs.
func checkAgainstTcpdump(t *testing.T, d *liveDoc, points []pointSpec, tds []*tcpdumpAt, outDir string) {
	t.Helper()
	evidence := outDir != ""
	checkEchoes(t, d, 5, specNames(points))
	reqs := d.ofType("echo-request")
	if len(reqs) == 0 || reqs[0].ID == nil {
		t.Fatal("no echo request with an id")
	}
	id := *reqs[0].ID

	// What tcpdump saw, and the evidence pcaps when they were written.
	var files []string
	for _, td := range tds {
		files = append(files, td.file)
	}
	if evidence {
		for _, p := range points {
			files = append(files, filepath.Join(outDir, p.Name+".cap"))
		}
	}
	seen := tsharkAll(t, files, id)
	var diffs []int64
	compare := func(point, what string, got, want map[icmpKey]int64) {
		if len(want) != 10 {
			t.Errorf("%s: tcpdump saw %d echoes of id %d, want 10", point, len(want), id)
		}
		for k, ts := range want {
			ps, ok := got[k]
			if !ok {
				t.Errorf("%s: tcpdump saw ICMP type %d seq %d, %s did not", point, k.Type, k.Seq, what)
				continue
			}
			diff := max(ps-ts, ts-ps)
			diffs = append(diffs, diff)
			if diff > 10_000 {
				t.Errorf("%s: ICMP type %d seq %d: %s stamp %d, tcpdump %d: %d ns apart, want ≤ 10 µs",
					point, k.Type, k.Seq, what, ps, ts, diff)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: %s has ICMP type %d seq %d, tcpdump did not see it", point, what, k.Type, k.Seq)
			}
		}
	}
	for i, p := range points {
		compare(p.Name, "the JSON", jsonEchoes(t, d, p.Name), seen[i])
		if evidence {
			compare(p.Name, "the evidence pcap", seen[len(points)+i], seen[i])
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Logf("stamp differences pathtrace vs tcpdump over %d sightings: median %d ns, max %d ns",
			len(diffs), diffs[len(diffs)/2], diffs[len(diffs)-1])
	}
}
