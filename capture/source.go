// Package capture reads frames: from capture files (pcap, pcapng, gzip) and
// from live AF_PACKET sockets inside network namespaces. Both feed the same
// Source interface, so the correlator cannot tell them apart.
package capture

import "github.com/pathtrace/pathtrace/correlate"

// Link types (pcap LINKTYPE_ values) the decoder understands.
const (
	LinkTypeNull     = 0
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101 // raw IPv4/IPv6, no link header
	LinkTypeLoop     = 108
	LinkTypeLinuxSLL = 113
	LinkTypeIPv4     = 228
	LinkTypeIPv6     = 229
	LinkTypeSLL2     = 276
)

// RawFrame is one captured frame. Data is valid only until the next call to
// Next: copy what you keep.
type RawFrame struct {
	Data     []byte
	Time     int64 // ns since the Unix epoch
	WireLen  int   // original length
	LinkType int   // pcap LINKTYPE_ value
	Iface    int   // index into the source's Interfaces()
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
	LinkType    int
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
	// the source; the frames before it stay valid — except ErrTimeout from a
	// live source, which only says no frame came within the poll timeout.
	Next() (RawFrame, error)
	Interfaces() []Interface
	// Warnings collected while reading (truncation, skipped blocks...).
	Warnings() []string
	Close() error
}
