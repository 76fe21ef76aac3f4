package correlate

import (
	"fmt"
	"strings"
	"testing"
)

// TestAttachDrops: a lost request and an unanswered one take the drops of
// their own frames; an answered echo and its reply take none, even with a
// drop of the reply's key (the probe socket's NO_SOCKET copy); a drop of
// another frame at the same time joins nothing.
func TestAttachDrops(t *testing.T) {
	c := cfgFor(seedPath...)
	ms := int64(1e6)
	var fs []Frame
	fs = append(fs, pingFrames(0, 1)...) // answered
	for p := range 3 {                   // seq 2: lost after cni0
		fs = append(fs, echo(p, 200*ms+int64(p)*10_000, 8, 2, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	for p := range 5 { // seq 3: reaches pod2, never answered
		fs = append(fs, echo(p, 400*ms+int64(p)*10_000, 8, 3, pod1MAC, pod2MAC, pod1IP, pod2IP, 64))
	}
	for p := range 5 { // the answer tells pod2's position
		fs = append(fs, echo(4-p, 600*ms+int64(p)*10_000, 0, 9, pod2MAC, pod1MAC, pod2IP, pod1IP, 64))
	}
	r := analyze(t, c, fs)
	key := func(seq uint32, typ uint8) Key { return echo(0, 0, typ, seq, pod1MAC, pod2MAC, pod1IP, pod2IP, 64).Key }
	drops := []Drop{
		{Key: key(2, 8), Time: 200*ms + 25_000, Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x46f", Netns: "node1",
			Rule: "bridge guard forward handle 4: icmp type echo-request drop"},
		{Key: key(3, 8), Time: 400*ms + 60_000, Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x46f", Netns: "pod2", Interface: "eth0"},
		{Key: key(1, 0), Time: 100_000, Reason: "NO_SOCKET", Location: "ping_rcv+0x7b", Netns: "pod1"},
		{Key: key(7, 8), Time: 200*ms + 25_000, Reason: "NO_SOCKET", Location: "ping_rcv+0x7b", Netns: "pod1"},
	}
	left := AttachDrops(r.Traces, drops, 100*ms)
	got := map[string]string{}
	for _, tr := range r.Traces {
		if tr.Drop != nil {
			got[fmt.Sprintf("%s %d", tr.Type, tr.Seq.V)] = tr.Drop.Reason + " " + tr.Drop.Netns
		}
	}
	want := map[string]string{"echo-request 2": "NETFILTER_DROP node1", "echo-request 3": "NETFILTER_DROP pod2"}
	if len(got) != len(want) || got["echo-request 2"] != want["echo-request 2"] || got["echo-request 3"] != want["echo-request 3"] {
		t.Fatalf("drops on traces %v, want %v", got, want)
	}
	if len(left) != 2 {
		t.Fatalf("%d drops left over, want the reply's and the unrelated one", len(left))
	}
	v := DropVerdict(r.Traces)
	if !strings.Contains(v, "NETFILTER_DROP ×1 in node1 at nft_do_chain+0x46f, rule bridge guard forward handle 4: icmp type echo-request drop") {
		t.Errorf("verdict part %q", v)
	}
}

// TestLostProbe: a probe no point saw is a trace of its own, lost before
// the first point, counted in the summary and the verdict, and takes its
// drop.
func TestLostProbe(t *testing.T) {
	c := cfgFor(seedPath...)
	var traces []Trace
	e, err := New(c, func(tr *Trace) { traces = append(traces, tr.Clone()) })
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range pingFrames(0, 1) {
		e.Add(&f)
	}
	k := echo(0, 0, 8, 5, pod1MAC, pod2MAC, pod1IP, pod2IP, 64).Key
	e.LostProbe(k, 0x1234, pod1IP, pod2IP)
	r := e.Finish()
	if len(traces) != 3 || r.Summary.Traces != 3 || r.Summary.Lost != 1 {
		t.Fatalf("%d traces, summary %+v", len(traces), r.Summary)
	}
	lost := traces[2]
	if lost.N != 3 || len(lost.Hops) != 0 || len(lost.Flags) != 1 || lost.Flags[0] != FlagLost || lost.Seq.V != 5 || lost.ID.V != 0x1234 {
		t.Fatalf("lost probe %+v", lost)
	}
	if want := "1 of 3 traces lost (before " + c.Points[0].Name + " ×1)"; !strings.Contains(r.Summary.Verdict, want) {
		t.Errorf("verdict %q, want %q in it", r.Summary.Verdict, want)
	}
	AttachDrops(traces, []Drop{{Key: k, Time: 5e9, Reason: "NEIGH_FAILED", Location: "neigh_invalidate+0x8a", Netns: "pod1", Interface: "eth0"}}, 1e8)
	if traces[2].Drop == nil || traces[2].Drop.Reason != "NEIGH_FAILED" {
		t.Fatalf("lost probe drop %+v", traces[2].Drop)
	}
	if traces[0].Drop != nil || traces[1].Drop != nil {
		t.Errorf("answered echo took a drop")
	}
	if v := DropVerdict(traces); v != "dropped by the kernel: NEIGH_FAILED ×1 in pod1 on eth0 at neigh_invalidate+0x8a" {
		t.Errorf("drop verdict %q", v)
	}
}
