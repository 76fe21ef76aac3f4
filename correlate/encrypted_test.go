package correlate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Frames of encrypted tunnels are matched as the outer packets they are,
// and each point that saw any gets one warning saying what they are.
func TestEncryptedTunnelWarning(t *testing.T) {
	nodeA, nodeB := netip.MustParseAddr("192.168.56.1"), netip.MustParseAddr("192.168.56.2")
	espFrame := func(point int, ts int64, seq uint32) Frame {
		f := Frame{Point: point, Time: ts, Num: int(seq),
			Key:   Key{Proto: ProtoIP, Kind: 50, IPID: seq, Hash: uint64(seq), Len: 100},
			SrcIP: nodeA, DstIP: nodeB, TTL: 64, HasTTL: true, IPLen: 120, WireLen: 134, CapLen: 134}
		f.Encap = Encap{Type: EncapESP, SrcIP: nodeA, DstIP: nodeB, TTL: 64}
		return f
	}
	wgFrame := func(point int, ts int64, seq uint32) Frame {
		f := Frame{Point: point, Time: ts, Num: 10 + int(seq),
			Key:   Key{Proto: ProtoUDP, Kind: 17, IPID: 100 + seq, Hash: uint64(seq), Len: 32},
			SrcIP: nodeB, DstIP: nodeA, TTL: 64, HasTTL: true, SrcPort: 51820, DstPort: 51820, HasPorts: true,
			IPLen: 60, WireLen: 74, CapLen: 74}
		f.Encap = Encap{Type: EncapWireGuard, SrcIP: nodeB, DstIP: nodeA, TTL: 64, SrcPort: 51820, DstPort: 51820}
		return f
	}
	const ms = int64(1e6)
	var fs []Frame
	for i := range uint32(3) {
		t0 := int64(1e18) + int64(i)*100*ms
		fs = append(fs, espFrame(0, t0, i), espFrame(1, t0+ms/10, i))
	}
	fs = append(fs, wgFrame(1, int64(1e18)+400*ms, 1), wgFrame(1, int64(1e18)+500*ms, 2))
	r := analyze(t, cfgFor("nodeA-eth0", "nodeB-eth0"), fs)

	var got []string
	for _, w := range r.Warnings {
		if strings.Contains(w, "encrypted") {
			got = append(got, w)
		}
	}
	want := []string{
		"nodeA-eth0: 3 frames are IPsec ESP: encrypted, their inner packets cannot be matched across the tunnel",
		"nodeB-eth0: 5 frames are IPsec ESP or WireGuard: encrypted, their inner packets cannot be matched across the tunnel",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
	esp := 0
	for _, tr := range r.Traces {
		if tr.Hops[0].Encap.Type == EncapESP {
			esp++
			if names := hopNames(tr); !slices.Equal(names, []string{"nodeA-eth0", "nodeB-eth0"}) {
				t.Errorf("ESP trace %d hops %v: the outer packet is matched across the underlay", tr.N, names)
			}
		}
		if tr.Hops[0].Encap.Type == EncapWireGuard && (!tr.Hops[0].Encap.SrcPort.Valid || tr.Hops[0].Encap.DstPort.V != 51820) {
			t.Errorf("WireGuard hop without its ports: %+v", tr.Hops[0].Encap)
		}
	}
	if esp != 3 {
		t.Errorf("%d ESP traces, want 3", esp)
	}

	// No encrypted frames, no such warning.
	r = analyze(t, cfgFor(seedPath...), pingFrames(int64(1e18), 1))
	for _, w := range r.Warnings {
		if strings.Contains(w, "encrypted") {
			t.Errorf("warning without encrypted frames: %q", w)
		}
	}
}

func TestEncapTypeNames(t *testing.T) {
	for typ := EncapNone + 1; typ <= EncapWireGuard; typ++ {
		b, _ := typ.MarshalText()
		var back EncapType
		if err := back.UnmarshalText(b); err != nil || back != typ {
			t.Errorf("%v: %q parses as %v, %v", uint8(typ), b, back, err)
		}
		if typ.Encrypted() != (typ == EncapESP || typ == EncapWireGuard) {
			t.Errorf("%v.Encrypted() = %v", typ, typ.Encrypted())
		}
	}
	if EncapESP.String() != "esp" || EncapWireGuard.String() != "wireguard" {
		t.Errorf("names %q %q", EncapESP, EncapWireGuard)
	}
}
