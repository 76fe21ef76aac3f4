package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/discover"
)

// Container runtimes name network namespaces like this (CNI's cni-<uuid>).
const (
	ctrA = "cni-3f2c5e1a-7b9c-4d1e-9a2b-123456789abc"
	ctrB = "cni-8d4b2e6f-1c3a-4f5e-8b7d-fedcba987654"
)

// containerDoc is the live fixture as it reads between two containers:
// every name and owner of pod1 and pod2 replaced by a container's
// namespace name.
func containerDoc() Document {
	d := live()
	var r correlate.Result
	var p discover.Path
	rename := func(v, into any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		s := strings.NewReplacer("pod1", ctrA, "pod2", ctrB).Replace(string(b))
		if err := json.Unmarshal([]byte(s), into); err != nil {
			panic(err)
		}
	}
	rename(d.Result, &r)
	rename(d.Path, &p)
	d.Result, d.Path = &r, &p
	return d
}

// The default table of a live run between containers fits 120 columns:
// the path's and points' names wrap inside their cells, the trace matrix
// abbreviates its headers (none alike) and spells them out in a legend.
func TestTableContainerNames(t *testing.T) {
	d := containerDoc()
	out, lines := render(t, d, Options{})
	checkWidth(t, lines, 120)
	header, rows := matrix(t, lines)
	if len(rows) != len(d.Result.Traces) {
		t.Errorf("%d trace rows, want %d", len(rows), len(d.Result.Traces))
	}
	seen := map[string]bool{}
	for _, h := range strings.Fields(header[strings.Index(header, "START (UTC)")+len("START (UTC)"):]) {
		if seen[h] {
			t.Errorf("two columns headed %q: %s", h, header)
		}
		seen[h] = true
	}
	for _, n := range []string{ctrA, ctrA + "-veth", ctrB, ctrB + "-veth"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), "= "+n) {
			t.Errorf("the legend does not spell out %s:\n%s", n, out)
		}
	}
	t.Logf("\n%s", out)
}

// Up to ten points of any names fit 120 columns, headers never alike.
func TestTimelineTenContainers(t *testing.T) {
	var names []string
	for i := range 10 {
		// Point names as discovery makes them: <netns>, <netns>-veth.
		n := fmt.Sprintf("cni-%08x-7b9c-4d1e-9a2b-%012x", 0x3f2c5e1a+i/2, 0x123456789abc+i/2)
		if i%2 == 1 {
			n += "-veth"
		}
		names = append(names, n)
	}
	r := &correlate.Result{Summary: correlate.Summary{Verdict: "OK"}}
	for _, n := range names {
		r.Points = append(r.Points, correlate.PointRep{Name: n})
	}
	for k := range 4 {
		specs := make([]hopSpec, len(names))
		for i, n := range names {
			specs[i] = hopSpec{point: n, at: int64(k)*1_000_000_000 + int64(i)*12_345_678, src: macPod1, dst: macPod2, ttl: 64}
		}
		r.Traces = append(r.Traces, correlate.Trace{N: k + 1, Protocol: correlate.ProtoICMP, Type: "echo-request", Seq: u(uint64(k)),
			SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.2.3"), Direction: correlate.Forward, Hops: hops(specs...),
			RTT: &correlate.RTT{TotalNs: 250_000}})
	}
	out, lines := render(t, Document{Result: r}, Options{})
	checkWidth(t, lines, 120)
	header, rows := matrix(t, lines)
	if len(rows) != 4 {
		t.Errorf("%d rows, want 4\n%s", len(rows), out)
	}
	cols := strings.Fields(header[strings.Index(header, "START (UTC)")+len("START (UTC)"):])
	seen := map[string]bool{}
	for _, h := range cols[:10] {
		if seen[h] {
			t.Errorf("two columns headed %q: %s", h, header)
		}
		seen[h] = true
	}
	for _, n := range names {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), "= "+n) {
			t.Errorf("legend lacks %s", n)
		}
	}
	t.Logf("\n%s", out)
}

func TestAbbreviate(t *testing.T) {
	for _, c := range []struct {
		names []string
		w     int
		want  string
	}{
		{[]string{"pod1", "pod1-veth", "cni0"}, 9, "pod1 pod1-veth cni0"},
		{[]string{"node-any:if2", "node-any:if3"}, 7, "node-a…2 node-a…3"},
		{[]string{ctrA, ctrA + "-veth", ctrB + "-veth", ctrB}, 7, "cni-3f…c cni-3f…h cni-8d…h cni-8d…4"},
		{[]string{"xa-1", "xb-1", "xc-1"}, 2, "p1 p2 p3"},
	} {
		ws := make([]int, len(c.names))
		for i := range ws {
			ws[i] = c.w
		}
		if c.want == "node-a…2 node-a…3" {
			ws[0], ws[1] = 8, 8
		}
		if c.want == "cni-3f…c cni-3f…h cni-8d…h cni-8d…4" {
			for i := range ws {
				ws[i] = 8
			}
		}
		if got := strings.Join(abbreviate(c.names, ws), " "); got != c.want {
			t.Errorf("abbreviate(%v, %v) = %q, want %q", c.names, ws, got, c.want)
		}
	}
}
