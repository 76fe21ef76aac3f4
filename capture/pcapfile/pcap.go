package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pathtrace/pathtrace/capture"
)

// Reader reads a classic pcap file (µs or ns stamps, either byte order,
// the "modified" variant), frame by frame with a reused buffer.
type Reader struct {
	input
	pcap pcapState
}

// Sections is nil: a pcap file has none.
func (s *Reader) Sections() []SectionInfo { return nil }

// Next returns the next frame, or io.EOF at the end.
func (s *Reader) Next() (capture.RawFrame, error) {
	if s.err != nil {
		return capture.RawFrame{}, s.err
	}
	return s.done(s.next())
}

type pcapState struct {
	order    binary.ByteOrder
	nano     bool
	modified bool // Alexey Kuznetzov's patched libpcap: 8 more header bytes
	snaplen  int
	linkType capture.LinkType
	hdr      [24]byte
}

type pcapVariant struct {
	order    binary.ByteOrder
	nano     bool
	modified bool
}

// pcapMagic recognises the classic pcap magics in file byte order.
func pcapMagic(m []byte) (pcapVariant, bool) {
	if len(m) < 4 {
		return pcapVariant{}, false
	}
	le, be := binary.LittleEndian.Uint32(m), binary.BigEndian.Uint32(m)
	for _, c := range []struct {
		order binary.ByteOrder
		v     uint32
	}{{binary.LittleEndian, le}, {binary.BigEndian, be}} {
		switch c.v {
		case 0xa1b2c3d4:
			return pcapVariant{order: c.order}, true
		case 0xa1b23c4d:
			return pcapVariant{order: c.order, nano: true}, true
		case 0xa1b2cd34:
			return pcapVariant{order: c.order, modified: true}, true
		}
	}
	return pcapVariant{}, false
}

// startPcap reads the 24-byte file header.
func (s *Reader) start() {
	p := &s.pcap
	ok, _, err := s.readFull(p.hdr[:24])
	if err != nil {
		s.err = err
		return
	}
	if !ok {
		s.err = s.truncated("the pcap file header")
		return
	}
	v, _ := pcapMagic(p.hdr[:4])
	p.order, p.nano, p.modified = v.order, v.nano, v.modified
	major, minor := p.order.Uint16(p.hdr[4:6]), p.order.Uint16(p.hdr[6:8])
	if major != 2 {
		// Version 1 files predate the current record layout; nothing reads
		// them correctly today (tshark refuses them too).
		s.err = fmt.Errorf("open %s: unsupported pcap version %d.%d", s.name, major, minor)
		return
	}
	p.snaplen = int(p.order.Uint32(p.hdr[16:20]))
	lt := p.order.Uint32(p.hdr[20:24])
	if lt&0x03ff0000 != 0 {
		// The upper bits carry FCS length flags; these are reserved and
		// must be zero (libpcap and tshark refuse such files as well).
		s.err = fmt.Errorf("open %s: pcap link type field 0x%08x has reserved bits set", s.name, lt)
		return
	}
	p.linkType = capture.LinkType(lt & 0xffff)
	s.snaplen = p.snaplen
	if p.linkType != capture.LinkTypeSLL2 {
		s.ifaces = append(s.ifaces, capture.Interface{IfIndex: -1, LinkType: p.linkType, Snaplen: p.snaplen})
	}
}

func (s *Reader) next() (capture.RawFrame, error) {
	p := &s.pcap
	hlen := 16
	if p.modified {
		hlen = 24
	}
	num := s.num + 1
	// The common case reads the record in place from the read buffer (valid
	// until the next call, as Next promises); a record the buffer does not
	// hold whole goes the copying way, which also reports cuts exactly.
	hdr, _ := s.br.Peek(hlen)
	if len(hdr) < hlen {
		ok, clean, err := s.readFull(p.hdr[:hlen])
		if err != nil {
			return capture.RawFrame{}, err
		}
		if clean {
			return capture.RawFrame{}, io.EOF
		}
		if !ok {
			return capture.RawFrame{}, s.truncated(fmt.Sprintf("the header of frame %d", num))
		}
		hdr = p.hdr[:hlen]
	} else {
		s.br.Discard(hlen)
	}
	sec := uint64(p.order.Uint32(hdr[0:4]))
	sub := uint64(p.order.Uint32(hdr[4:8]))
	caplen := p.order.Uint32(hdr[8:12])
	wirelen := p.order.Uint32(hdr[12:16])
	if caplen > MaxFrameBytes {
		return capture.RawFrame{}, s.stop("frame %d claims %d captured bytes, more than the %d-byte limit (corrupt file?)", num, caplen, MaxFrameBytes)
	}
	data, _ := s.br.Peek(int(caplen))
	if len(data) == int(caplen) {
		s.br.Discard(int(caplen))
	} else {
		data = s.record(int(caplen))
		ok, _, err := s.readFull(data)
		if err != nil {
			return capture.RawFrame{}, err
		}
		if !ok {
			return capture.RawFrame{}, s.truncated(fmt.Sprintf("frame %d", num))
		}
	}
	s.num = num
	if !p.nano {
		sub *= 1000
	}
	rf := capture.RawFrame{
		Data:     data,
		Time:     int64(sec*1e9 + sub),
		WireLen:  int(wirelen),
		LinkType: p.linkType,
		Num:      num,
	}
	s.linkMeta(&rf, -1)
	return rf, nil
}
