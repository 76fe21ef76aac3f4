package filter

import (
	"errors"
	"net/netip"
	"testing"
	"unicode/utf8"
)

// fuzzViews are frames every compiled filter is evaluated on, so that the
// canonical form is checked to mean the same, not only to parse.
func fuzzViews() []Fields {
	tcp := ipv4Fields(podA, podB, 6, 40000, 80)
	frag := ipv4Fields(podB, podA, 17, 53, 1234)
	frag.NonFirstFragment = true
	tagged := ipv4Fields(podA, nodeA, 1, 0, 0)
	tagged.VLANs[0], tagged.VLANs[1], tagged.NumVLAN = VLANTag{EtherTypeQinQ, 100}, VLANTag{EtherTypeVLAN, 200}, 2
	v6 := Fields{WireLen: 90, HasMAC: true, EtherType: EtherTypeIPv6, Have: allHave, Src: v6A, Dst: v6B,
		Proto: 44, FragProto: 58}
	arp := Fields{WireLen: 42, HasMAC: true, DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		EtherType: EtherTypeARP, Have: HaveEtherType, ARPSender: podA, ARPTarget: netip.Addr{}}
	cut := Fields{WireLen: 20, HasMAC: true, EtherType: EtherTypeIPv4, Have: HaveEtherType}
	return []Fields{tcp, frag, tagged, v6, arp, cut, {}}
}

// FuzzCompile: no input crashes or hangs the compiler; an error is an
// *Error pointing inside the expression; a compiled filter's String
// compiles again to the same String and the same answers.
func FuzzCompile(f *testing.F) {
	for _, e := range commonExprs {
		f.Add(e)
	}
	for _, e := range []string{
		"host 10.0.0.1 or 10.0.0.2 and not (port 53 or 80)", "vlan 100 and vlan 200 and ip6 net fd00::/8",
		"ether src 00:11:22:33:44:55 or ether dst 0011.2233.4455", "tcp[13] & 2 != 0", "((((", "host (1 or (2))",
		"net 10.0.0.0 mask 255.0.255.0", "\\tcp", "portrange http-https", "not not not", "$1f", "::1/64",
	} {
		f.Add(e)
	}
	views := fuzzViews()
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := Compile(expr)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Compile(%q): error %T is not *Error", expr, err)
			}
			if fe.Column < 1 || fe.Column > utf8.RuneCountInString(expr)+1 {
				t.Fatalf("Compile(%q): column %d outside the expression", expr, fe.Column)
			}
			return
		}
		s := flt.String()
		again, err := Compile(s)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not compile: %v", s, expr, err)
		}
		if again.String() != s {
			t.Fatalf("canonical form not stable: %q -> %q -> %q", expr, s, again.String())
		}
		for i := range views {
			if flt.Match(&views[i]) != again.Match(&views[i]) {
				t.Fatalf("%q and its canonical form %q disagree on view %d", expr, s, i)
			}
		}
	})
}
