package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestProbePayloadRoundTrip(t *testing.T) {
	tag := []byte("ptrun-1234")
	p := Payload(tag, 65535, 1_700_000_000_123456789)
	seq, sent, ok := ParsePayload(tag, p)
	if !ok || seq != 65535 || sent != 1_700_000_000_123456789 {
		t.Fatalf("round trip: %d %d %v", seq, sent, ok)
	}
	if _, _, ok := ParsePayload([]byte("ptrun-9999"), p); ok {
		t.Fatal("payload of another run accepted")
	}
	if _, _, ok := ParsePayload(tag, p[:len(p)-1]); ok {
		t.Fatal("short payload accepted")
	}
}

func TestICMPChecksum(t *testing.T) {
	// A checksummed message sums to zero.
	msg := []byte{8, 0, 0, 0, 0, 7, 0, 1, 'a', 'b', 'c'}
	c := icmpChecksum(msg)
	msg[2], msg[3] = byte(c>>8), byte(c)
	if icmpChecksum(msg) != 0 {
		t.Fatalf("checksum %#04x does not verify", c)
	}
}

func TestTCPSynAndAnswer(t *testing.T) {
	src, dst := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.96.0.10")
	seg := tcpSyn(nil, 40000, 80, 1000+7)
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src, dst, seg))
	if tcpChecksum(src, dst, seg) != 0 {
		t.Fatal("SYN checksum does not verify")
	}
	if len(seg) != 24 || seg[13] != 0x02 || seg[12]>>4 != 6 {
		t.Fatalf("SYN header % x", seg)
	}
	p := &TCPProber{dst: netip.AddrPortFrom(dst, 80), sport: 40000, base: 1000}
	answer := func(sport, dport uint16, flags byte, ack uint32) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[0:], sport)
		binary.BigEndian.PutUint16(b[2:], dport)
		binary.BigEndian.PutUint32(b[8:], ack)
		b[13] = flags
		return b
	}
	for _, c := range []struct {
		name string
		seg  []byte
		seq  uint16
		ok   bool
	}{
		{"syn-ack", answer(80, 40000, 0x12, 1000+7+1), 7, true},
		{"rst-ack", answer(80, 40000, 0x14, 1000+3+1), 3, true},
		{"plain ack", answer(80, 40000, 0x10, 1000+7+1), 0, false},
		{"other port", answer(81, 40000, 0x12, 1000+7+1), 0, false},
		{"other run", answer(80, 40000, 0x12, 99999999), 0, false},
		{"short", answer(80, 40000, 0x12, 1008)[:12], 0, false},
	} {
		seq, ok := p.answer(c.seg)
		if ok != c.ok || seq != c.seq {
			t.Errorf("%s: answer = %d, %v; want %d, %v", c.name, seq, ok, c.seq, c.ok)
		}
	}
}
