package kdrop

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// echo is the ICMP echo at the start of an IPv4 packet (no tunnel).
type echo struct {
	typ      uint8
	id, seq  uint16
	payload  []byte
	src, dst netip.Addr
}

func parseEcho(b []byte) (echo, bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != 1 {
		return echo{}, false
	}
	ihl := int(b[0]&0xf) * 4
	if len(b) < ihl+8 {
		return echo{}, false
	}
	icmp := b[ihl:]
	return echo{
		typ: icmp[0], id: binary.BigEndian.Uint16(icmp[4:]), seq: binary.BigEndian.Uint16(icmp[6:]),
		payload: icmp[8:], src: netip.AddrFrom4([4]byte(b[12:16])), dst: netip.AddrFrom4([4]byte(b[16:20])),
	}, true
}

func (e echo) isProbe(id uint16, tag []byte) bool {
	return e.id == id && bytes.HasPrefix(e.payload, tag)
}
