package e2e

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TCP SYN probes (--tcp-port) on the lab: each SYN and its RST (port 9 is
// closed) cross all five points, and at every point pathtrace saw exactly
// the SYNs tcpdump saw, with the same stamps.
func TestTraceTCPProbeAgainstTcpdump(t *testing.T) {
	testenv.RequireRoot(t)
	needTools(t, "ip", "tcpdump", "tshark")
	l := e2eUp(t, e2eConfig(t))
	points := labPath(l, l.Pods[0], l.Pods[1])
	dir := t.TempDir()
	tds := startTcpdumpFilter(t, dir, points, "tcp")
	r := runTrace(t, traceCtx(t), "--src", l.Pods[0].Name, "--dst", l.Pods[1].Name, "--tcp-port", "9",
		"-c", "3", "-i", "100ms", "--timeout", "500ms", "-f", "json")
	stopTcpdump(t, tds)
	if r.Code != exitOK || r.Doc == nil {
		t.Fatalf("exit %d, want 0\n%s", r.Code, r.describe())
	}
	names := specNames(points)
	syns, rsts := r.Doc.ofType("syn"), r.Doc.ofType("rst-ack")
	if len(syns) != 3 || len(rsts) != 3 || len(r.Doc.Traces) != 6 {
		t.Fatalf("%d SYNs, %d RST-ACKs, %d traces; want 3, 3, 6\n%s", len(syns), len(rsts), len(r.Doc.Traces), r.describe())
	}
	for _, set := range []struct {
		trs  []*liveTrace
		path []string
	}{{syns, names}, {rsts, reverse(names)}} {
		for _, tr := range set.trs {
			if got := tr.points(); !slices.Equal(got, set.path) || len(tr.Missing) > 0 || tr.LostAfter != "" {
				t.Errorf("trace %s: hops %v missing %v lost after %q, want %v", tr, got, tr.Missing, tr.LostAfter, set.path)
			}
		}
	}
	for i, p := range points {
		seen := tsharkSyns(t, tds[i].file)
		got := map[uint64]int64{}
		for _, tr := range syns {
			if h := tr.hop(p.Name); h != nil {
				got[*tr.Seq] = hopNs(t, h)
			}
		}
		if len(seen) != 3 || len(got) != len(seen) {
			t.Errorf("%s: tcpdump saw %d SYNs, pathtrace %d; want 3 each", p.Name, len(seen), len(got))
		}
		for seq, ts := range seen {
			if ps, ok := got[seq]; !ok || max(ps-ts, ts-ps) > 10_000 {
				t.Errorf("%s: SYN seq %d: tcpdump %d, pathtrace %d (seen %v)", p.Name, seq, ts, ps, ok)
			}
		}
	}
}

// tsharkSyns is every SYN in a capture file: raw sequence number → stamp
// (a SYN seen twice is an error: pathtrace's SYNs are unique).
func tsharkSyns(t *testing.T, file string) map[uint64]int64 {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
		"-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.seq_raw").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", filepath.Base(file), err)
	}
	m := map[uint64]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("tshark %s: line %q", file, sc.Text())
		}
		ns, err1 := epochToNs(f[0])
		seq, err2 := strconv.ParseUint(f[1], 10, 32)
		if err := firstErr(err1, err2); err != nil {
			t.Fatalf("tshark %s: line %q: %v", file, sc.Text(), err)
		}
		if _, dup := m[seq]; dup {
			t.Errorf("%s: SYN seq %d seen twice", filepath.Base(file), seq)
		}
		m[seq] = ns
	}
	return m
}
