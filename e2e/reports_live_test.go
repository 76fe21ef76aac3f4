package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/pathtrace/pathtrace/internal/testenv"
	"github.com/pathtrace/pathtrace/lab"
	"github.com/pathtrace/pathtrace/netns"
)

// Live behaviour of issue 13 on labs of its own (prefix "ptr", subnets in
// 10.70–10.79).
func reportsConfig(t *testing.T) lab.Config { return uniqueLab(t, "ptr", 70) }

// An MTU mismatch: pod1's eth0 takes 1500-byte packets, its host veth only
// 1450, so the veth drops what pod1 sends at full size before any capture
// there sees it. --size 1472 makes 1500-byte probes; the verdict names the
// hop whose MTU is too small. The kernel's own count of the drops (pod1
// eth0's tx_dropped, counted by the veth driver) is the reference.
func TestTraceMTU(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := reportsConfig(t)
	l := e2eUp(t, cfg)
	pod1, veth := l.Pods[0].Name, cfg.Prefix+"pod1-veth"
	setMTU(t, l.Pods[0].Netns, "eth0", 1500)
	ctx := traceCtx(t)
	// Default probes fit every hop.
	r := runTrace(t, ctx, "--src", pod1, "--dst", l.Pods[1].Name, "-c", "2", "-i", "50ms", "--timeout", "300ms", "-f", "json")
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("56-byte probes: exit %d, want 0\n%s", r.Code, r.describe())
	}
	before := txDropped(t, l.Pods[0].Netns, "eth0")
	ev := filepath.Join(t.TempDir(), "ev")
	r = runTrace(t, ctx, "--src", pod1, "--dst", l.Pods[1].Name, "-c", "3", "-i", "50ms", "--timeout", "300ms",
		"--size", "1472", "-f", "json", "--out", ev)
	dropped := txDropped(t, l.Pods[0].Netns, "eth0") - before
	if r.Code != exitFindings || r.Doc == nil {
		t.Fatalf("1472-byte probes: exit %d, want 1\n%s", r.Code, r.describe())
	}
	d := r.Doc
	if dropped != 3 {
		t.Errorf("the kernel dropped %d frames at %s, want the 3 probes", dropped, veth)
	}
	a := d.anomaly("over-mtu", veth)
	want := "IP packets of 1500 bytes do not fit " + veth + "'s MTU 1450"
	if a == nil || a.Count != 3 || a.Message != want {
		t.Errorf("over-mtu anomaly at %s: %+v, want 3 traces and %q\n%s", veth, a, want, r.describe())
	}
	if !strings.HasPrefix(d.Summary.Verdict, "PROBLEM: "+want+" (3 traces); ") {
		t.Errorf("verdict %q does not name %s's MTU first", d.Summary.Verdict, veth)
	}
	for _, tr := range d.ofType("echo-request") {
		if tr.LostAfter != pod1 || !slices.Contains(tr.Flags, "over-mtu") {
			t.Errorf("trace %s: lost after %q, flags %v; want lost after %s, over-mtu", tr, tr.LostAfter, tr.Flags, pod1)
		}
	}
	if d.Live == nil || d.Live.Sent != 3 || d.Live.Replies != 0 {
		t.Errorf("live %+v, want 3 sent, none answered", d.Live)
	}
	// The evidence's path.pcapng records each point's MTU (pcapng has no
	// option for it: the interface description carries it), and analysing
	// the file reads it back. (Offline, with no reply from pod2 nothing
	// says the requests were headed for pod2, so they are off-path there,
	// not lost after pod1: the MTU finding needs the live path.)
	code, out, _ := runCLI(t, "analyze", "-q", "-f", "json", filepath.Join(ev, "path.pcapng"))
	var off struct {
		Points []struct {
			Name string `json:"name"`
			MTU  *int   `json:"mtu"`
		} `json:"points"`
	}
	if err := json.Unmarshal([]byte(out), &off); err != nil || code > exitFindings || len(off.Points) != 5 {
		t.Fatalf("analyze path.pcapng: exit %d, %v", code, err)
	}
	for i, want := range []int{1500, 1450, 1450, 1450, 1450} {
		if p := off.Points[i]; p.MTU == nil || *p.MTU != want {
			t.Errorf("analyze path.pcapng: %s mtu %v, want %d", p.Name, p.MTU, want)
		}
	}
	// The table says it too, with the probe size.
	r = runTrace(t, ctx, "--src", pod1, "--dst", l.Pods[1].Name, "-c", "1", "--timeout", "300ms", "--size", "1472")
	if !strings.Contains(r.Stdout, "probes: 1 requested (1472-byte payload), 1 sent, 0 answered") ||
		!strings.Contains(r.Stdout, "Verdict: PROBLEM: "+want) {
		t.Errorf("table:\n%s", r.Stdout)
	}
}

func setMTU(t *testing.T, nsPath, ifname string, mtu int) {
	t.Helper()
	h, err := netns.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(vnetns.NsHandle(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetMTU(link, mtu); err != nil {
		t.Fatalf("set %s MTU %d: %v", ifname, mtu, err)
	}
}

func txDropped(t *testing.T, nsPath, ifname string) uint64 {
	t.Helper()
	l, err := linkIn(nsPath, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.TxDropped
}

// The same endpoint twice, by name or by name and IP, is refused in one
// line before anything is captured.
func TestTraceSameEndpoint(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := reportsConfig(t)
	l := e2eUp(t, cfg)
	p := l.Pods[0]
	for _, dst := range []string{p.Name, p.IP.String()} {
		r := runTrace(t, traceCtx(t), "--src", p.Name, "--dst", dst)
		line := oneLine(t, "same endpoint", r.Stderr)
		want := "pathtrace: --src " + p.Name + " and --dst " + dst + " are the same endpoint (network namespace " + p.Name + ")"
		if r.Code != exitUsage || r.Stdout != "" || !strings.HasPrefix(line, want) {
			t.Errorf("--dst %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", dst, r.Code, r.Stdout, line, want)
		}
	}
}

// The demo uses a lab of its own: it refuses to start where a lab (or a
// namespace) of its names exists, and leaves that lab as it was, nft rules
// and all.
func TestDemoOwnLab(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "nft", "ip")
	cfg := reportsConfig(t)
	l := e2eUp(t, cfg)
	ctx := traceCtx(t)
	mustRun(t, inNetns(ctx, l.Node, "nft", "add", "table", "bridge", "ptrkeep"))
	args := []string{"demo", "--prefix", cfg.Prefix, "--subnet", cfg.Subnet.String(), "-c", "1"}
	code, out, errs := runCLI(t, args...)
	line := oneLine(t, "demo on a lab it did not make", errs)
	if code != exitUsage || out != "" || !strings.Contains(line, "pathtrace lab down --prefix "+cfg.Prefix) {
		t.Errorf("demo: exit %d, stdout %q, stderr %q; want exit 2 naming the lab", code, out, line)
	}
	if _, err := lab.Status(cfg); err != nil {
		t.Errorf("after the refused demo, the lab: %v", err)
	}
	if got := mustRun(t, inNetns(ctx, l.Node, "nft", "list", "tables")); !strings.Contains(got, "table bridge ptrkeep") {
		t.Errorf("the lab's nft table is gone: %q", got)
	}

	// A namespace of one of its names, not a lab's: refused too, untouched.
	other := reportsConfig(t)
	ns := other.Prefix + "pod2"
	mustRun(t, exec.Command("ip", "netns", "add", ns))
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	code, _, errs = runCLI(t, "demo", "--prefix", other.Prefix, "--subnet", other.Subnet.String(), "-c", "1")
	if line := oneLine(t, "demo beside a namespace", errs); code != exitUsage || !strings.Contains(line, "network namespace "+ns+" exists") {
		t.Errorf("demo beside %s: exit %d, %q", ns, code, line)
	}
	if _, err := os.Stat(filepath.Join(lab.RunDir, ns)); err != nil {
		t.Errorf("%s: %v", ns, err)
	}
	if left := labLeftovers(other.Prefix); len(left) != 1 {
		t.Errorf("the refused demo left %v (want only %s)", left, ns)
	}
}

// lab down and status say what happened in one line: "lab "p" removed",
// "no lab "p": nothing to remove"; status without root says it needs root
// instead of an open() error.
func TestLabMessages(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := reportsConfig(t)
	flags := []string{"--prefix", cfg.Prefix, "--subnet", cfg.Subnet.String()}
	e2eUp(t, cfg)
	code, out, errs := runCLI(t, append([]string{"lab", "down"}, flags...)...)
	if code != exitOK || out != `lab "`+cfg.Prefix+"\" removed\n" || errs != "" {
		t.Errorf("lab down: exit %d, %q %q", code, out, errs)
	}
	code, out, _ = runCLI(t, "lab", "down", "--prefix", cfg.Prefix)
	if code != exitOK || out != `no lab "`+cfg.Prefix+"\": nothing to remove\n" {
		t.Errorf("lab down again: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, "lab", "status", "--prefix", cfg.Prefix)
	if code != exitFindings || out != `no lab "`+cfg.Prefix+"\"\n" {
		t.Errorf("lab status without a lab: exit %d, %q", code, out)
	}
	dir, err := os.MkdirTemp("", "ptr-nobody-") // nobody's working directory
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startPT(t, dir, &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}, "lab", "status", "--prefix", cfg.Prefix)
	code = p.wait(t, 10*time.Second)
	line := oneLine(t, "lab status as nobody", p.errb.String())
	if code != exitUsage || !strings.Contains(line, "needs root") || strings.Contains(line, "permission denied") {
		t.Errorf("lab status as nobody: exit %d, %q", code, line)
	}
}

// A passive run says what it correlated, not "probes: 0 requested".
func TestPassiveLine(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := reportsConfig(t)
	l := e2eUp(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := runTrace(t, ctx, "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "--passive", "--duration", "300ms", "-q")
	if r.Code > exitFindings || !strings.Contains(r.Stdout, "\npassive: the endpoints' own traffic; captured ") ||
		strings.Contains(r.Stdout, "probes:") {
		t.Errorf("passive run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// A live run between namespaces named like a container runtime names them
// (cni-<uuid>): the default table still fits 120 columns, and no two trace
// columns are headed alike.
func TestTraceContainerNames(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := reportsConfig(t)
	cfg.Prefix += "cni-3f2c5e1a-7b9c-4d1e-9a2b-"
	l := e2eUp(t, cfg)
	r := runTrace(t, traceCtx(t), "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "-c", "2", "-i", "50ms", "--timeout", "300ms")
	if r.Code != exitOK {
		t.Fatalf("exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var header string
	for _, line := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		if n := len([]rune(line)); n > 120 {
			t.Errorf("line of %d columns: %q", n, line)
		}
		if strings.Contains(line, "START (UTC)") {
			header = line
		}
	}
	cols := strings.Fields(header[strings.Index(header, "START (UTC)")+len("START (UTC)"):])
	seen := map[string]bool{}
	for _, c := range cols[:min(5, len(cols))] {
		seen[c] = true
	}
	if len(seen) != 5 || !strings.Contains(header, "TOTAL µs") {
		t.Errorf("trace columns %q: want five distinct point headers, then TOTAL µs", cols)
	}
	if !strings.Contains(r.Stdout, "columns: ") || !strings.Contains(r.Stdout, "= "+l.Pods[0].Name+"-veth") {
		t.Errorf("no legend for the abbreviated columns:\n%s", r.Stdout)
	}
}
