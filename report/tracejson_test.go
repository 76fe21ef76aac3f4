package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"

	capdecode "github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

// stdTrace is what encoding/json writes for t, compact (the reference).
func stdTrace(t *testing.T, tr correlate.Trace) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(normTrace(tr)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// checkTrace encodes tr with a cache of its own and with sc, which the
// caller keeps from trace to trace as a stream does.
func checkTrace(t *testing.T, what string, tr *correlate.Trace, sc *stampCache) {
	t.Helper()
	want := stdTrace(t, *tr)
	if got := appendTrace(nil, tr); !bytes.Equal(got, want) {
		t.Fatalf("%s: trace %d differs from encoding/json:\ngot:\n%s\nwant:\n%s", what, tr.N, got, want)
	}
	if got := appendTraceCached(nil, tr, sc); !bytes.Equal(got, want) {
		t.Fatalf("%s: trace %d, encoded after the ones before, differs from encoding/json:\ngot:\n%s\nwant:\n%s", what, tr.N, got, want)
	}
}

// TestTraceJSONMatchesEncodingJSON: every trace of every real capture in
// testdata, and traces with every odd field, encode byte for byte as
// encoding/json encodes them.
func TestTraceJSONMatchesEncodingJSON(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*"))
	n := 0
	var sc stampCache
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		for _, tr := range analyzeDir(t, d) {
			checkTrace(t, d, &tr, &sc)
			n++
		}
	}
	if n < 100 {
		t.Fatalf("only %d traces from testdata", n)
	}
	odd := correlate.Trace{
		N: 7, Protocol: correlate.ProtoTCP, Type: "syn-ack", Direction: correlate.Reverse,
		SrcIP:   correlate.OptAddr{V: netip.MustParseAddr("fd00::1")},
		SrcPort: correlate.OptUint{V: 443, Valid: true}, ID: correlate.OptUint{V: 0, Valid: true},
		Hops: []correlate.Hop{{Point: `we"ird\ point ✓ <&> ` + "\t\x01\u2028", Time: -5, DeltaNs: -3,
			SrcMAC: correlate.OptMAC{V: correlate.MAC{0xff, 0, 1, 0xab, 0xcd, 0xef}, Valid: true}, Dir: correlate.DirIn, Reflection: true},
			{Point: "b", UncertaintyNs: 1234, ClockOffsetNs: -16e6, Encap: correlate.HopEncap{Type: correlate.EncapVXLAN, VNI: correlate.OptUint{V: 0, Valid: true},
				OuterSrcIP: correlate.OptAddr{V: netip.MustParseAddr("192.168.1.1")}, OuterTTL: correlate.OptUint{V: 64, Valid: true},
				SrcPort: correlate.OptUint{V: 40000, Valid: true}, DstPort: correlate.OptUint{V: 8472, Valid: true}}},
			{Point: "c", Encap: correlate.HopEncap{Type: correlate.EncapIPIP, OuterDstMAC: correlate.OptMAC{V: correlate.MAC{1, 2, 3, 4, 5, 6}, Valid: true}}}},
		LostAfter: "cni0", Missing: []string{"a", "b\n"},
		Rewrites: []correlate.Rewrite{{Point: "x", Field: correlate.FieldTTL, From: "64", To: "63"}},
		ReplyTo:  correlate.OptInt{V: 3, Valid: true},
		RTT:      &correlate.RTT{TotalNs: 1, ForwardNs: 2, TurnaroundNs: 3, ReverseNs: -4},
		Flags:    []correlate.Flag{correlate.FlagLost, correlate.FlagGap},
		Drop: &correlate.TraceDrop{Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x46f", Netns: "pod2", Interface: "eth0",
			Time: 1_700_000_000_123456789, Rule: `bridge guard forward handle 4: icmp type echo-request counter "x" drop`},
	}
	checkTrace(t, "odd", &odd, &sc)
	// A drop without flags, then without a rule.
	drop := *odd.Drop
	odd.Flags, odd.Drop = nil, &drop
	checkTrace(t, "odd, a drop without flags", &odd, &sc)
	drop.Rule = ""
	checkTrace(t, "odd, a drop without a rule", &odd, &sc)
	checkTrace(t, "empty", &correlate.Trace{}, &sc)
}

// TestTraceJSONHopCache: a stream's cached hop text follows every field it
// stands for. One point's hops change MACs, TTL, direction and second from
// trace to trace; points of equal names but separate strings, and
// names whose slots collide, share the cache; every trace must still read
// as encoding/json writes it.
func TestTraceJSONHopCache(t *testing.T) {
	mac := func(b ...byte) correlate.OptMAC { return correlate.OptMAC{V: correlate.MAC(b), Valid: true} }
	names := []string{"pod1", "pod1-veth", "cni0", string([]byte("pod1")), "x"}
	for i := range 80 { // more names than slots: some collide
		names = append(names, fmt.Sprintf("p%02d", i))
	}
	var sc stampCache
	r := rand.New(rand.NewPCG(3, 4))
	macs := []correlate.OptMAC{{}, mac(1, 2, 3, 4, 5, 6), mac(1, 2, 3, 4, 5, 7), mac(6, 5, 4, 3, 2, 1)}
	ttls := []correlate.OptUint{{}, {V: 64, Valid: true}, {V: 63, Valid: true}, {V: 255, Valid: true}, {V: 300, Valid: true}}
	for n := range 3000 {
		tr := correlate.Trace{N: n, Protocol: correlate.ProtoICMP, Type: "echo-request"}
		for range 1 + r.IntN(6) {
			tr.Hops = append(tr.Hops, correlate.Hop{
				Point: names[r.IntN(len(names))],
				// A few seconds apart, either side of 1970 too.
				Time:    correlate.Timestamp(int64(r.IntN(7)-2)*1e9 + int64(r.IntN(1e9))),
				DeltaNs: int64(r.IntN(2e6)) - 1e3, SrcMAC: macs[r.IntN(len(macs))], DstMAC: macs[r.IntN(len(macs))],
				TTL: ttls[r.IntN(len(ttls))], Dir: correlate.LinkDir(r.IntN(3)), Frame: r.IntN(1e9)})
		}
		checkTrace(t, "random hops", &tr, &sc)
	}
}

// TestHopCacheKeepsFloodHops: once a stream has written each of a
// capture's hop texts, it writes none again while they fit the table,
// wherever the point names' strings lie (direct-mapped by their addresses,
// two of them could share a slot and rewrite each other every trace).
func TestHopCacheKeepsFloodHops(t *testing.T) {
	mac := func(b byte) correlate.OptMAC {
		return correlate.OptMAC{V: correlate.MAC{2, 0, 0, 0, 0, b}, Valid: true}
	}
	var traces []correlate.Trace
	// 8 points x 5 link variants: 40 hop texts, under maxHopSlots.
	for p := range 8 {
		name := fmt.Sprintf("point-%d", p)
		for v := range 5 {
			tr := correlate.Trace{N: len(traces), Protocol: correlate.ProtoICMP, Type: "echo-request"}
			tr.Hops = append(tr.Hops, correlate.Hop{Point: name, Time: 1764478862123456789, SrcMAC: mac(byte(v)),
				DstMAC: mac(byte(v + 1)), TTL: correlate.OptUint{V: 64, Valid: true}, Frame: v})
			traces = append(traces, tr)
		}
	}
	var sc stampCache
	var buf []byte
	for i := range traces {
		buf = appendTraceCached(buf[:0], &traces[i], &sc)
	}
	if sc.fills != len(traces) {
		t.Fatalf("first pass wrote %d hop texts, want %d", sc.fills, len(traces))
	}
	for range 3 {
		for i := range traces {
			buf = appendTraceCached(buf[:0], &traces[i], &sc)
			if want := stdTrace(t, traces[i]); !bytes.Equal(buf, want) {
				t.Fatalf("trace %d: got %s, want %s", i, buf, want)
			}
		}
	}
	if sc.fills != len(traces) {
		t.Errorf("%d hop texts written again after the first pass (want 0)", sc.fills-len(traces))
	}
	// More texts than the table keeps: it starts over, and stays exact.
	fills := sc.fills
	n := maxHopSlots + 20
	for i := range n {
		tr := traces[i%len(traces)]
		tr.Hops = []correlate.Hop{tr.Hops[0]}
		tr.Hops[0].SrcMAC.V = correlate.MAC{2, 1, 0, 0, byte(i >> 8), byte(i)} // a text of its own each
		checkTrace(t, "overflow", &tr, &sc)
	}
	if got := sc.fills - fills; got != n {
		t.Errorf("%d new hop texts written %d times", n, got)
	}
	if sc.hopsUsed >= len(traces)+n {
		t.Errorf("the table holds %d texts: it did not start over", sc.hopsUsed)
	}
}

// BenchmarkTraceJSON encodes a flood's echo-request trace (five hops, as
// a `ping -f` through a bridge gives) the way the JSON report's encoders
// do, one trace after the other.
func BenchmarkTraceJSON(b *testing.B) {
	ip := func(s string) correlate.OptAddr { return correlate.OptAddr{V: netip.MustParseAddr(s)} }
	tr := correlate.Trace{N: 123456, Protocol: correlate.ProtoICMP, Type: "echo-request", Direction: correlate.Forward,
		ID: correlate.OptUint{V: 4711, Valid: true}, Seq: correlate.OptUint{V: 65000, Valid: true},
		IPID: correlate.OptUint{V: 51234, Valid: true}, SrcIP: ip("10.244.1.2"), DstIP: ip("10.244.1.3"), Length: 98}
	for i, p := range []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"} {
		tr.Hops = append(tr.Hops, correlate.Hop{Point: p, Time: correlate.Timestamp(1764478862123456789 + int64(i)*9000),
			DeltaNs: int64(i) * 9000, TTL: correlate.OptUint{V: 64, Valid: true}, Frame: 400000 + i,
			SrcMAC: correlate.OptMAC{V: correlate.MAC{0x36, 0x38, 0x56, 0x34, 0x22, 0xdb}, Valid: true},
			DstMAC: correlate.OptMAC{V: correlate.MAC{0x0e, 0x5d, 0x63, 0xde, 0x25, 0x41}, Valid: true}})
	}
	var sc stampCache
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendTraceCached(buf[:0], &tr, &sc)
	}
	b.SetBytes(int64(len(appendTrace(nil, &tr))))
}

// analyzeDir correlates every frame of every capture in dir, one point per
// file interface, in stamp order: traces of real captures without the
// pipeline (which imports report).
func analyzeDir(t *testing.T, dir string) []correlate.Trace {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	dec := capdecode.New()
	var specs []correlate.PointSpec
	var frames []correlate.Frame
	for _, f := range files {
		src, err := pcapfile.Open(f)
		if err != nil {
			continue // FACTS.md, tshark.tsv
		}
		base := len(specs)
		for {
			rf, err := src.Next()
			if err != nil {
				break
			}
			for len(specs) <= base+rf.Iface {
				specs = append(specs, correlate.PointSpec{Name: fmt.Sprintf("%s:%d", filepath.Base(f), len(specs)-base), IfIndex: -1})
			}
			var fr correlate.Frame
			dec.DecodeAny(&rf, &fr)
			fr.Point = base + rf.Iface
			frames = append(frames, fr)
		}
		src.Close()
	}
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].Time < frames[j].Time })
	res, err := correlate.Analyze(correlate.Config{Points: specs}, frames)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return res.Traces
}
