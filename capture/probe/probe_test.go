package probe

import "testing"

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
