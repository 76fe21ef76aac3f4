// Package capture is what every frame source has in common: the raw frame a
// source yields, the interfaces it describes and the Source interface that
// files (capture/pcapfile) and live sockets (capture/afpacket) both
// implement, so the pipeline cannot tell them apart. Decoding raw frames
// into the correlator's values is capture/decode's job.
package capture

import (
	"errors"
	"strconv"

	"github.com/pathtrace/pathtrace/correlate"
)

// ErrTimeout says nothing came within a poll timeout (a live sockets
// frame, a probes reply). It does not end a source: call again.
var ErrTimeout = errors.New("capture: poll timeout")

// LinkType is a pcap LINKTYPE_ value: what header a frame starts with.
type LinkType uint16

// Link types the decoder understands.
const (
	LinkTypeNull     LinkType = 0
	LinkTypeEthernet LinkType = 1
	LinkTypeRaw      LinkType = 101 // raw IPv4/IPv6, no link header
	LinkTypeLoop     LinkType = 108
	LinkTypeLinuxSLL LinkType = 113
	LinkTypeIPv4     LinkType = 228
	LinkTypeIPv6     LinkType = 229
	LinkTypeSLL2     LinkType = 276
)

func (l LinkType) String() string {
	switch l {
	case LinkTypeNull:
		return "NULL"
	case LinkTypeEthernet:
		return "EN10MB"
	case LinkTypeRaw:
		return "RAW"
	case LinkTypeLoop:
		return "LOOP"
	case LinkTypeLinuxSLL:
		return "LINUX_SLL"
	case LinkTypeIPv4:
		return "IPV4"
	case LinkTypeIPv6:
		return "IPV6"
	case LinkTypeSLL2:
		return "LINUX_SLL2"
	}
	return "LINKTYPE_" + strconv.Itoa(int(l))
}

// RawFrame is one captured frame. Data is valid only until the next call to
// Next: copy what you keep. pcapfile's readers set its fields one by one
// (faster than a composite literal): a field added here must be set there.
type RawFrame struct {
	Data     []byte
	Time     int64 // ns since the Unix epoch
	WireLen  int   // original length
	LinkType LinkType
	Iface    int // index into the source's Interfaces()
	Dir      correlate.LinkDir
	Num      int // 1-based record number in the source
}

// Interface is one capture interface within a source: a pcap file has one, a
// pcapng file one per interface block, an SLL2 (`tcpdump -i any`) file one
// per ifindex seen, a live socket one.
type Interface struct {
	Name        string // interface name as recorded; "" when the file records none
	Description string
	IfIndex     int // SLL2 ifindex, live ifindex; -1 when unknown
	LinkType    LinkType
	Snaplen     int    // 0 when unknown
	Drops       uint64 // kernel drops as recorded (pcapng ISB ifdrop, live socket stats)
	HasDrops    bool
	Netns       string // live only: namespace label
	MTU         int    // live only
	// Start and End bound the time the interface was capturing, where the
	// source records it (live sockets; pcapng isb_starttime/isb_endtime);
	// 0 when unknown.
	Start, End int64
}

// Source yields frames of one capture. Interfaces may grow while reading (an
// SLL2 file reveals its ifindexes as it goes).
type Source interface {
	// Next returns the next frame, or io.EOF at the end. Any other error ends
	// the source; the frames before it stay valid — except ErrTimeout from
	// a live source.
	Next() (RawFrame, error)
	Interfaces() []Interface
	// Warnings collected while reading (truncation, skipped blocks...).
	Warnings() []string
	Close() error
}
