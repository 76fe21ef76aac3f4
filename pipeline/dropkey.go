package pipeline

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/kdrop"
	"github.com/pathtrace/pathtrace/correlate"
)

// record keys a kernel drop like a captured frame: the dropped packet's
// headers are decoded by the same decoder, from the (outer) network
// header, so a tunnelled probe gets its inner frame's key as it does at a
// capture point. --filter applies as to captured frames.
func (dw *dropWatch) record(dec *decode.Decoder, ev *kdrop.Event) (dropRecord, bool) {
	rec := dropRecord{
		Drop:  correlate.Drop{Time: ev.Time, Reason: ev.ReasonName, Location: ev.Symbol},
		inode: uint64(ev.NetnsInode), ifindex: ev.Ifindex, symbol: ev.Symbol,
		l3proto: ev.L3Proto, packet: append([]byte(nil), ev.Packet...), inner: ev.InnerOffset,
	}
	if rec.Location == "" {
		rec.Location = fmt.Sprintf("0x%x", ev.Location)
	}
	return rec, rec.key(dec, dw.filter)
}

// key sets the drop's key from its packet; false when it has none or
// --filter leaves it out.
func (rec *dropRecord) key(dec *decode.Decoder, ff *frameFilter) bool {
	if rec.inner < 0 || rec.inner > len(rec.packet) {
		rec.inner = 0
	}
	f, rf, ok := keyPacket(dec, rec.l3proto, rec.packet, rec.inner)
	if !ok {
		return false
	}
	ff.apply(dec, &rf, &f)
	if f.Key.Proto == correlate.ProtoNone {
		return false
	}
	rec.Key, rec.echoID, rec.hasEcho = f.Key, f.EchoID, f.HasEchoID
	return true
}

// addLostProbes gives the correlator the probes no point saw, each keyed
// as the kernel's drop of it when there is one (so the drop joins it).
func addLostProbes(eng *correlate.Engine, lost []lostNote, drops []dropRecord) {
	for _, l := range lost {
		k := correlate.Key{Proto: correlate.ProtoICMP, Kind: correlate.ICMPEchoRequest, Seq: uint32(l.Seq)}
		if l.Dst.Is6() {
			k.Proto, k.Kind = correlate.ProtoICMPv6, correlate.ICMPv6EchoReq
		}
		for i := range drops {
			d := &drops[i]
			if d.hasEcho && d.echoID == l.ID && d.Key.Proto == k.Proto && d.Key.Kind == k.Kind && d.Key.Seq == k.Seq {
				k = d.Key
				break
			}
		}
		eng.LostProbe(k, l.ID, l.Src, l.Dst)
	}
}

// keyPacket decodes a dropped packet's headers: an IP packet from its
// network header, ARP under a made-up Ethernet header (its key is in the
// ARP payload). When the outer packet gives no key (a tunnel the decoder
// does not open), the inner one is tried.
func keyPacket(dec *decode.Decoder, l3proto uint16, pkt []byte, inner int) (correlate.Frame, capture.RawFrame, bool) {
	var f correlate.Frame
	rf := capture.RawFrame{LinkType: capture.LinkTypeRaw, Data: pkt, WireLen: ipLen(pkt)}
	if l3proto == 0x0806 {
		eth := make([]byte, 14, 14+len(pkt))
		binary.BigEndian.PutUint16(eth[12:], 0x0806)
		rf = capture.RawFrame{LinkType: capture.LinkTypeEthernet, Data: append(eth, pkt...), WireLen: 14 + len(pkt)}
	}
	if dec.Decode(&rf, &f) {
		return f, rf, true
	}
	if inner > 0 && inner < len(pkt) {
		rf = capture.RawFrame{LinkType: capture.LinkTypeRaw, Data: pkt[inner:], WireLen: ipLen(pkt[inner:])}
		if dec.Decode(&rf, &f) {
			return f, rf, true
		}
	}
	return f, rf, false
}

// ipLen is an IP packet's length as its header gives it: the drop record
// holds only its first bytes, and the key counts the whole payload.
func ipLen(ip []byte) int {
	n := 0
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		n = int(binary.BigEndian.Uint16(ip[2:4]))
	case len(ip) >= 40 && ip[0]>>4 == 6:
		n = 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	}
	return max(n, len(ip))
}

// transportOf is the transport header of an IP packet, for nftKey.
func transportOf(ip []byte) []byte {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		if hl := int(ip[0]&0x0f) * 4; hl >= 20 && len(ip) >= hl {
			return ip[hl:]
		}
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return ip[40:]
	}
	return nil
}

// nftKey reads what ties a netfilter drop to its nft trace event from the
// network and transport headers: addresses, and the ICMP type, id and seq
// of an echo.
func nftKey(network, transport []byte) (ruleKey, bool) {
	var k ruleKey
	switch {
	case len(network) >= 20 && network[0]>>4 == 4:
		k.src, _ = netip.AddrFromSlice(network[12:16])
		k.dst, _ = netip.AddrFromSlice(network[16:20])
	case len(network) >= 40 && network[0]>>4 == 6:
		k.src, _ = netip.AddrFromSlice(network[8:24])
		k.dst, _ = netip.AddrFromSlice(network[24:40])
	default:
		return k, false
	}
	if len(transport) >= 8 {
		k.typ = transport[0]
		k.echoID, k.seq = binary.BigEndian.Uint16(transport[4:6]), binary.BigEndian.Uint16(transport[6:8])
		k.hasEchoField = true
	}
	return k, true
}
