package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
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
	// The commonest case, inline: the whole record lies in the bytes the
	// read buffer already holds (the view). Its data is then the buffer's
	// own memory, valid until the next call, as Next promises.
	var rf capture.RawFrame
	if s.inView(&rf) {
		return rf, nil
	}
	return s.done(s.next())
}

// NextBatch reads up to len(rfs) frames into rfs and returns how many:
// those whose records the read buffer holds whole, else the one Next
// reads. They are valid until the next call of Next or NextBatch. At the
// end it returns 0 and the error Next would return. A reader that reads
// thousands of frames a batch pays no call and no copy of a RawFrame per
// frame.
func (s *Reader) NextBatch(rfs []capture.RawFrame) (int, error) {
	n := 0
	for s.err == nil && n < len(rfs) && s.inView(&rfs[n]) {
		n++
	}
	return s.endBatch(rfs, n, s.next)
}

// inView reads the next record into rf when the read buffer already holds
// it whole (the view), the commonest case: its data is then the buffer's
// own memory, valid until the buffer is read again.
func (s *Reader) inView(rf *capture.RawFrame) bool {
	p := &s.pcap
	v := s.view[s.vpos:]
	if len(v) < p.hlen {
		return false
	}
	caplen := p.u32(v[8:12])
	end := p.hlen + int(caplen)
	if caplen > MaxFrameBytes || len(v) < end {
		return false
	}
	s.vpos += end
	s.num++
	s.frames++
	s.frame(rf, v[p.hlen:end:end], v)
	return true
}

// Stamps reads the stamps and interfaces of up to len(ts) records into ts
// and ifaces (as Next's Time and Iface), skipping their data, and returns
// how many; at the end it returns 0 and the error Next would. A pass over
// the stamps alone, at a fraction of Next's cost: no frame is filled, and
// the records the read buffer holds whole are walked in one tight loop.
func (s *Reader) Stamps(ts []int64, ifaces []int) (int, error) {
	p := &s.pcap
	if s.err != nil {
		return 0, s.err
	}
	v, pos, hlen := s.view, s.vpos, p.hlen
	sll2 := p.linkType == capture.LinkTypeSLL2
	ifaces = ifaces[:len(ts)]
	n := 0
	for ; n < len(ts) && len(v)-pos >= hlen; n++ {
		h := v[pos:]
		caplen := p.u32(h[8:12])
		end := pos + hlen + int(caplen)
		if caplen > MaxFrameBytes || end > len(v) {
			break
		}
		ts[n], ifaces[n] = p.stamp(h), 0
		if sll2 {
			ifaces[n] = s.sll2IfaceOf(-1, v[pos+hlen:end])
		}
		pos = end
	}
	s.vpos, s.num, s.frames = pos, s.num+n, s.frames+n
	if n > 0 || len(ts) == 0 {
		return n, nil
	}
	return s.endStamps(ts, ifaces, s.next)
}

// stamp is the record with header hdr's stamp, in ns.
func (p *pcapState) stamp(hdr []byte) int64 {
	sub := uint64(p.u32(hdr[4:8]))
	if !p.nano {
		sub *= 1000
	}
	return int64(uint64(p.u32(hdr[0:4]))*1e9 + sub)
}

// frame fills rf with the record with header hdr and captured bytes data.
func (s *Reader) frame(rf *capture.RawFrame, data, hdr []byte) {
	p := &s.pcap
	// Field by field, not *rf = RawFrame{...}: that is built on the stack
	// and copied in 16-byte loads spanning its 8- and 2-byte stores, which
	// the CPU cannot forward (two thirds of this function's time).
	rf.Data, rf.Time, rf.WireLen = data, p.stamp(hdr), int(p.u32(hdr[12:16]))
	rf.LinkType, rf.Iface, rf.Dir, rf.Num = p.linkType, 0, correlate.DirUnknown, s.num
	if p.linkType == capture.LinkTypeLinuxSLL || p.linkType == capture.LinkTypeSLL2 {
		s.linkMeta(rf, -1)
	}
}

type pcapState struct {
	order    binary.ByteOrder
	le       bool // order is little-endian (read without an interface call)
	nano     bool
	modified bool // Alexey Kuznetzov's patched libpcap: 8 more header bytes
	hlen     int  // record header length
	snaplen  int
	linkType capture.LinkType
	hdr      [24]byte
}

func (p *pcapState) u32(b []byte) uint32 {
	if p.le {
		return binary.LittleEndian.Uint32(b)
	}
	return binary.BigEndian.Uint32(b)
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
	p.le = v.order == binary.LittleEndian
	p.hlen = 16
	if p.modified {
		p.hlen = 24
	}
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

// next reads a record the view does not hold whole: it gives the view's
// bytes back to the read buffer, reads the record from it (in place when
// the buffer holds it, else copying, which also reports cuts exactly) and
// views what the buffer holds beyond it.
func (s *Reader) next() (capture.RawFrame, error) {
	p := &s.pcap
	s.br.Discard(s.vpos)
	s.view, s.vpos = nil, 0
	hlen := p.hlen
	num := s.num + 1
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
	} else {
		copy(p.hdr[:hlen], hdr) // the buffer may move when the data is read
		s.br.Discard(hlen)
	}
	caplen := p.u32(p.hdr[8:12])
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
	var rf capture.RawFrame
	s.frame(&rf, data[:len(data):len(data)], p.hdr[:hlen])
	// Viewing what is buffered reads nothing: data stays where it is.
	s.view, _ = s.br.Peek(s.br.Buffered())
	return rf, nil
}
