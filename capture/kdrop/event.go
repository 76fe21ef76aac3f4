package kdrop

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// Event is one dropped packet of the run, as the kernel freed it.
type Event struct {
	Time       int64  // ns since the Unix epoch on CLOCK_REALTIME (the clock of AF_PACKET stamps)
	Reason     Reason // enum skb_drop_reason value
	ReasonName string // from the running kernel's BTF: "NETFILTER_DROP", "NEIGH_FAILED", ...
	Location   uint64 // kernel text address that freed the skb
	Symbol     string // "nft_do_chain+0x46f"; "" when /proc/kallsyms is unreadable
	NetnsInode uint32 // network namespace (of skb->dev, else of the socket); 0 if neither
	Ifindex    int    // skb->dev's ifindex in that namespace; 0 without a device
	L3Proto    uint16 // ethertype of Packet: 0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP
	// Packet holds the bytes from the (outer) network header on, at most
	// 192, only of the skb's linear part. A tunnelled probe (VXLAN, GENEVE,
	// IP-in-IP) still starts at the outer header; InnerOffset is where the
	// matched inner network header starts (0: the packet itself matched).
	Packet      []byte
	InnerOffset int
	SkbLen      uint32 // skb->len (whole packet from skb->data, incl. non-linear parts)
	Skb         uint64 // skb address: the same packet reported twice has the same one
}

// recordSize is sizeof(struct event) in kdrop.bpf.c.
const recordSize = int(unsafe.Sizeof(kdropEvent{}))

// record offsets of struct event (kdrop.bpf.c).
const (
	offTime     = 0
	offLocation = 8
	offSkb      = 16
	offReason   = 24
	offNetns    = 28
	offIfindex  = 32
	offSkbLen   = 36
	offProto    = 40
	offCapLen   = 42
	offInner    = 44
	offData     = 48
)

// rawEvent is a record as the program wrote it, before clock conversion
// and naming.
type rawEvent struct {
	ktime    uint64
	location uint64
	skb      uint64
	reason   uint32
	netns    uint32
	ifindex  uint32
	skbLen   uint32
	proto    uint16
	inner    uint16
	data     []byte
}

// parseRecord decodes one ring buffer record. It checks what the program
// promises (sizes, offsets inside the copied bytes), since the bytes cross
// a trust boundary: a mismatched object would otherwise be misread.
func parseRecord(b []byte) (rawEvent, error) {
	if len(b) < recordSize {
		return rawEvent{}, fmt.Errorf("drop record of %d bytes, want %d", len(b), recordSize)
	}
	ne := binary.NativeEndian
	capLen := int(ne.Uint16(b[offCapLen:]))
	if capLen > recordSize-offData {
		return rawEvent{}, fmt.Errorf("drop record claims %d packet bytes, at most %d", capLen, recordSize-offData)
	}
	r := rawEvent{
		ktime:    ne.Uint64(b[offTime:]),
		location: ne.Uint64(b[offLocation:]),
		skb:      ne.Uint64(b[offSkb:]),
		reason:   ne.Uint32(b[offReason:]),
		netns:    ne.Uint32(b[offNetns:]),
		ifindex:  ne.Uint32(b[offIfindex:]),
		skbLen:   ne.Uint32(b[offSkbLen:]),
		proto:    ne.Uint16(b[offProto:]),
		inner:    ne.Uint16(b[offInner:]),
		data:     append([]byte(nil), b[offData:offData+capLen]...),
	}
	if int(r.inner) >= capLen && r.inner != 0 {
		return rawEvent{}, fmt.Errorf("drop record's inner header at %d, past its %d bytes", r.inner, capLen)
	}
	return r, nil
}
