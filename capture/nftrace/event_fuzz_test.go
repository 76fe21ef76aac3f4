package nftrace

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// traceMsg builds an NFT_MSG_TRACE body as the kernel sends it.
func traceMsg(t testing.TB, fam uint8, attrs []netlink.Attribute) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	for _, a := range attrs {
		ae.Bytes(a.Type, a.Data)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{fam, 0, 0, 0}, b...)
}

func sampleTrace(t testing.TB) []byte {
	verdict, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_VERDICT_CODE, Data: be32(0)}})
	return traceMsg(t, unix.NFPROTO_BRIDGE, []netlink.Attribute{
		{Type: unix.NFTA_TRACE_TABLE, Data: cstr("guard")},
		{Type: unix.NFTA_TRACE_CHAIN, Data: cstr("forward")},
		{Type: unix.NFTA_TRACE_ID, Data: be32(0xabcdef)},
		{Type: unix.NFTA_TRACE_TYPE, Data: be32(uint32(TraceRule))},
		{Type: unix.NFTA_TRACE_RULE_HANDLE, Data: binary.BigEndian.AppendUint64(nil, 4)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_TRACE_VERDICT, Data: verdict},
		{Type: unix.NFTA_TRACE_IIF, Data: be32(4)},
		{Type: unix.NFTA_TRACE_OIF, Data: be32(5)},
		{Type: unix.NFTA_TRACE_NETWORK_HEADER, Data: []byte{0x45, 0, 0, 84}},
	})
}

func TestParseTrace(t *testing.T) {
	ev, err := parseTrace(sampleTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Family != FamilyBridge || ev.Table != "guard" || ev.Chain != "forward" || ev.Handle != 4 || ev.ID != 0xabcdef ||
		ev.Type != TraceRule || ev.Verdict != VerdictDrop || !ev.Dropped() || ev.Iif != 4 || ev.Oif != 5 || len(ev.Network) != 4 {
		t.Errorf("parsed %+v", ev)
	}
	if _, err := parseTrace([]byte{7, 0}); err == nil {
		t.Error("short message parsed")
	}
}

// FuzzParseTrace: trace messages are bytes from the kernel; the parser must
// neither panic nor accept an event without table and chain.
func FuzzParseTrace(f *testing.F) {
	f.Add(sampleTrace(f))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 8, 0, 1, 0, 'a', 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parseTrace(b)
		if err == nil && (ev.Table == "" || ev.Chain == "") {
			t.Errorf("accepted %+v", ev)
		}
		_ = ev.Dropped()
		_ = ev.Verdict.String() + ev.Type.String() + ev.Family.String()
	})
}
