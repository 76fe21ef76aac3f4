package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// pcapng block types.
const (
	ngBlockSHB        = 0x0a0d0d0a
	ngBlockIDB        = 0x00000001
	ngBlockPB         = 0x00000002 // obsolete packet block
	ngBlockSPB        = 0x00000003
	ngBlockISB        = 0x00000005
	ngBlockEPB        = 0x00000006
	ngBlockJournal    = 0x00000009 // systemd journal export
	ngBlockCustom     = 0x00000bad
	ngBlockCustomNoCp = 0x40000bad
	ngByteOrderMagic  = 0x1a2b3c4d
)

// ngIface is one interface of the current section.
type ngIface struct {
	global  int // index into the reader's interfaces
	mul     uint64
	div     uint64 // decimal resolutions finer than ns
	shift   uint   // binary resolution 2^-shift; 0 = decimal
	binary  bool
	offset  int64 // if_tsoffset in ns
	snaplen int
}

// NgReader reads a pcapng file: several sections and interfaces, per
// interface timestamp resolution and offset, enhanced, simple and obsolete
// packet blocks, statistics (kernel drops, capture window).
type NgReader struct {
	input
	ng       ngState
	sections []SectionInfo
}

// Sections lists the sections seen so far.
func (s *NgReader) Sections() []SectionInfo { return append([]SectionInfo(nil), s.sections...) }

// Next returns the next frame, or io.EOF at the end.
func (s *NgReader) Next() (capture.RawFrame, error) {
	if s.err != nil {
		return capture.RawFrame{}, s.err
	}
	var rf capture.RawFrame
	if s.inView(&rf) {
		return rf, nil
	}
	return s.done(s.next())
}

// NextBatch reads up to len(rfs) frames into rfs and returns how many, as
// Reader.NextBatch does: those whose enhanced packet blocks the read
// buffer holds whole, else the one Next reads. They are valid until the
// next call of Next or NextBatch.
func (s *NgReader) NextBatch(rfs []capture.RawFrame) (int, error) {
	n := 0
	for s.err == nil && n < len(rfs) && s.inView(&rfs[n]) {
		n++
	}
	return s.endBatch(rfs, n, s.next)
}

// inView reads the next block into rf when it is an enhanced packet block
// the read buffer already holds whole (the view), which is what dumpcap
// writes frame after frame: its data is then the buffer's own memory,
// valid until the buffer is read again, and nothing is copied. Any other
// block, one the view cuts, and one ngPacket would refuse are left to the
// slow path (next), which reads and reports them as before.
func (s *NgReader) inView(rf *capture.RawFrame) bool {
	body, ok := s.epbInView()
	if ok {
		s.ngPacket(rf, ngBlockEPB, body, s.num+1) // checked: it cannot fail
		s.frames++
	}
	return ok
}

// epbInView takes the next block, when it is an enhanced packet block the
// view holds whole that ngPacket cannot refuse: its body, between its
// length fields.
func (s *NgReader) epbInView() (body []byte, ok bool) {
	ng := &s.ng
	v := s.view[s.vpos:]
	if len(v) < ngMinEPB || ng.u32(v[0:4]) != ngBlockEPB {
		return nil, false
	}
	blen := ng.u32(v[4:8])
	if blen < ngMinEPB || blen%4 != 0 || blen > maxBlockBytes || uint32(len(v)) < blen || ng.u32(v[blen-4:blen]) != blen ||
		ng.u32(v[8:12]) >= uint32(len(ng.ifs)) || ng.u32(v[20:24]) > blen-ngMinEPB {
		return nil, false
	}
	s.vpos += int(blen)
	ng.off += int64(blen)
	return v[8 : blen-4 : blen-4], true
}

// Stamps reads the stamps and interfaces of up to len(ts) frames into ts
// and ifaces, as Reader.Stamps does: from enhanced packet blocks the read
// buffer holds whole, else the one frame Next reads.
func (s *NgReader) Stamps(ts []int64, ifaces []int) (int, error) {
	ng := &s.ng
	n := 0
	for s.err == nil && n < len(ts) {
		body, ok := s.epbInView()
		if !ok {
			break
		}
		ni := &ng.ifs[ng.u32(body[0:4])]
		t := ni.ngTime(uint64(ng.u32(body[4:8]))<<32 | uint64(ng.u32(body[8:12])))
		ts[n], ifaces[n], ng.lastTime = t, ni.global, t
		if s.ifaces[ni.global].LinkType == capture.LinkTypeSLL2 {
			ifaces[n] = s.sll2IfaceOf(ni.global, body[20:20+ng.u32(body[12:16])])
		}
		s.num++
		s.frames++
		n++
	}
	if n > 0 || len(ts) == 0 {
		return n, nil
	}
	return s.endStamps(ts, ifaces, s.next)
}

// ngMinEPB is the smallest enhanced packet block: header, the five fixed
// fields, trailing length.
const ngMinEPB = 8 + 20 + 4

type ngState struct {
	order     binary.ByteOrder
	le        bool      // order is little-endian (read without an interface call)
	ifs       []ngIface // current section's interfaces; indices restart per section
	hdr       [12]byte
	off       int64 // uncompressed offset of the next block
	lastTime  int64 // for simple packet blocks, which carry no timestamp
	spbWarned bool
}

func (ng *ngState) u32(b []byte) uint32 {
	if ng.le {
		return binary.LittleEndian.Uint32(b)
	}
	return ng.order.Uint32(b)
}

// errNgOption is preallocated: the option walk runs for every packet.
var errNgOption = errors.New("option runs past the end of its block")

// ngOpts walks a pcapng option list without allocating.
type ngOpts struct {
	b     []byte
	order binary.ByteOrder
}

func (o *ngOpts) next() (code uint16, val []byte, ok bool, err error) {
	if len(o.b) < 4 {
		return 0, nil, false, nil
	}
	code, n := o.order.Uint16(o.b[0:2]), int(o.order.Uint16(o.b[2:4]))
	if code == 0 { // opt_endofopt
		return 0, nil, false, nil
	}
	padded := (n + 3) &^ 3
	if 4+padded > len(o.b) {
		return 0, nil, false, errNgOption
	}
	val = o.b[4 : 4+n]
	o.b = o.b[4+padded:]
	return code, val, true, nil
}

func isPacketBlock(t uint32) bool {
	return t == ngBlockEPB || t == ngBlockSPB || t == ngBlockPB
}

// isRecordBlock: blocks Wireshark shows as frames without being packets;
// counting them keeps RawFrame.Num equal to tshark's frame.number.
func isRecordBlock(t uint32) bool {
	return t == ngBlockCustom || t == ngBlockCustomNoCp || t == ngBlockJournal
}

func (s *NgReader) start() {
	s.ng.order, s.ng.le = binary.LittleEndian, true
	if _, err := s.ngStep(); err != nil {
		s.err = err
		return
	}
	// Read the interface blocks ahead so Interfaces() is useful before the
	// first Next; stop at the first packet block without consuming it.
	for s.err == nil {
		head, _ := s.br.Peek(4)
		if len(head) < 4 || isPacketBlock(s.ng.order.Uint32(head)) {
			return
		}
		if _, err := s.ngStep(); err != nil {
			s.err = err
		}
	}
}

// next reads blocks the view does not hold whole until a frame: it gives
// the view's bytes back to the read buffer, reads from it (copying), and
// views what the buffer holds beyond the frame's block.
func (s *NgReader) next() (capture.RawFrame, error) {
	s.br.Discard(s.vpos)
	s.view, s.vpos = nil, 0
	for {
		rf, err := s.ngStep()
		if err != nil {
			return rf, err
		}
		if rf.Num != 0 {
			// Viewing what is buffered reads nothing: the block read
			// stays where it is.
			s.view, _ = s.br.Peek(s.br.Buffered())
			return rf, nil
		}
	}
}

// ngStep reads one block; it returns a frame (Num != 0) for packet blocks.
func (s *NgReader) ngStep() (capture.RawFrame, error) {
	ng := &s.ng
	h := ng.hdr[:]
	ok, clean, err := s.readFull(h[:8])
	if err != nil {
		return capture.RawFrame{}, err
	}
	if clean {
		return capture.RawFrame{}, io.EOF
	}
	next := s.num + 1
	if !ok {
		return capture.RawFrame{}, s.truncated(fmt.Sprintf("a block header after frame %d", s.num))
	}
	typ := ng.order.Uint32(h[0:4])
	start := ng.off
	hlen := 8
	if typ == ngBlockSHB {
		// The byte-order magic decides how to read this block's length.
		ok, _, err = s.readFull(h[8:12])
		if err != nil {
			return capture.RawFrame{}, err
		}
		if !ok {
			return capture.RawFrame{}, s.truncated("a section header block")
		}
		switch binary.LittleEndian.Uint32(h[8:12]) {
		case ngByteOrderMagic:
			ng.order, ng.le = binary.LittleEndian, true
		case 0x4d3c2b1a:
			ng.order, ng.le = binary.BigEndian, false
		default:
			return capture.RawFrame{}, s.stop("section header at offset %d has bad byte-order magic % x", start, h[8:12])
		}
		hlen = 12
	}
	blen := ng.order.Uint32(h[4:8])
	if blen < 12 || blen%4 != 0 || (typ == ngBlockSHB && blen < 28) {
		return capture.RawFrame{}, s.stop("block of type 0x%x at offset %d has invalid length %d", typ, start, blen)
	}
	// what names the block in messages; built only on those paths, since
	// formatting would allocate for every packet.
	what := func() string {
		if isPacketBlock(typ) {
			return fmt.Sprintf("frame %d", next)
		}
		return fmt.Sprintf("block of type 0x%x at offset %d", typ, start)
	}
	parsed := isPacketBlock(typ) || typ == ngBlockSHB || typ == ngBlockIDB || typ == ngBlockISB
	if !parsed {
		// Skip without buffering: only the length matters.
		n, err := s.br.Discard(int(blen) - hlen)
		ng.off += int64(hlen + n)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF || s.gz != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					s.cutCause = err
				}
				return capture.RawFrame{}, s.truncated(what())
			}
			return capture.RawFrame{}, fmt.Errorf("read %s: %w", s.name, err)
		}
		if isRecordBlock(typ) {
			s.num++
		}
		return capture.RawFrame{}, nil
	}
	if blen > maxBlockBytes {
		if isPacketBlock(typ) {
			return capture.RawFrame{}, s.stop("frame %d claims %d bytes, more than the %d-byte limit (corrupt file?)", next, blen, maxBlockBytes)
		}
		return capture.RawFrame{}, s.stop("%s claims %d bytes, more than the %d-byte limit (corrupt file?)", what(), blen, maxBlockBytes)
	}
	blk := s.record(int(blen) - hlen)
	ok, _, err = s.readFull(blk)
	if err != nil {
		return capture.RawFrame{}, err
	}
	if !ok {
		return capture.RawFrame{}, s.truncated(what())
	}
	ng.off += int64(blen)
	if ng.order.Uint32(blk[len(blk)-4:]) != blen {
		return capture.RawFrame{}, s.stop("%s: trailing length %d does not match %d", what(), ng.order.Uint32(blk[len(blk)-4:]), blen)
	}
	body := blk[:len(blk)-4]
	switch typ {
	case ngBlockSHB:
		return capture.RawFrame{}, s.ngSection(body)
	case ngBlockIDB:
		return capture.RawFrame{}, s.ngInterface(body, start)
	case ngBlockISB:
		return capture.RawFrame{}, s.ngStats(body, start)
	}
	var rf capture.RawFrame
	err = s.ngPacket(&rf, typ, body, next)
	return rf, err
}

func (s *NgReader) ngSection(body []byte) error {
	order := s.ng.order
	major, minor := order.Uint16(body[0:2]), order.Uint16(body[2:4])
	if major != 1 || (minor != 0 && minor != 2) {
		// 1.2 was written by some old tools and is read like 1.0; other
		// versions have an unknown layout (tshark stops there as well).
		return s.stop("section %d has unsupported pcapng version %d.%d", len(s.sections)+1, major, minor)
	}
	info := SectionInfo{BigEndian: order == binary.BigEndian}
	opts := ngOpts{b: body[12:], order: order}
	for {
		code, val, ok, err := opts.next()
		if err != nil {
			return s.stop("section header %d: %v", len(s.sections)+1, err)
		}
		if !ok {
			break
		}
		switch code {
		case 1:
			c := string(val)
			info.Comments = append(info.Comments, c)
			if order, ok := strings.CutPrefix(c, pathOrderPrefix); ok {
				info.PathOrder = strings.Split(order, ",")
			}
		case 2:
			info.Hardware = string(val)
		case 3:
			info.OS = string(val)
		case 4:
			info.UserAppl = string(val)
		}
	}
	s.sections = append(s.sections, info)
	s.ng.ifs = s.ng.ifs[:0]
	return nil
}

func (s *NgReader) ngInterface(body []byte, start int64) error {
	if len(s.sections) == 0 {
		return s.stop("interface block at offset %d outside any section", start)
	}
	if len(body) < 8 {
		return s.stop("interface block at offset %d is too short", start)
	}
	order := s.ng.order
	ifc := capture.Interface{IfIndex: -1, LinkType: capture.LinkType(order.Uint16(body[0:2])), Snaplen: int(order.Uint32(body[4:8]))}
	ni := ngIface{mul: 1000} // default resolution: microseconds
	var haveRes, haveOff bool
	opts := ngOpts{b: body[8:], order: order}
	for {
		code, val, ok, err := opts.next()
		if err != nil {
			return s.stop("interface block at offset %d: %v", start, err)
		}
		if !ok {
			break
		}
		switch code {
		case 2:
			ifc.Name = string(val)
		case 3:
			ifc.Description = string(val)
		case 9: // if_tsresol
			if len(val) != 1 || haveRes {
				return s.stop("interface block at offset %d: bad or repeated if_tsresol", start)
			}
			haveRes = true
			r := val[0]
			if r&0x80 != 0 {
				k := uint(r & 0x7f)
				if k > 63 {
					return s.stop("interface block at offset %d: if_tsresol 2^-%d is too fine", start, k)
				}
				// Fields set apart: an if_tsoffset read before it stays.
				ni.binary, ni.shift, ni.mul, ni.div = true, k, 0, 0
			} else {
				k := int(r)
				if k > 19 {
					return s.stop("interface block at offset %d: if_tsresol 10^-%d is too fine", start, k)
				}
				ni.binary, ni.shift, ni.mul, ni.div = false, 0, 1, 1
				for ; k < 9; k++ {
					ni.mul *= 10
				}
				for ; k > 9; k-- {
					ni.div *= 10
				}
			}
		case 14: // if_tsoffset, seconds
			if len(val) != 8 || haveOff {
				return s.stop("interface block at offset %d: bad or repeated if_tsoffset", start)
			}
			haveOff = true
			ni.offset = int64(order.Uint64(val)) * 1e9
		}
	}
	if ni.div == 0 {
		ni.div = 1
	}
	ni.snaplen = ifc.Snaplen
	s.ifaces = append(s.ifaces, ifc)
	ni.global = len(s.ifaces) - 1
	s.ng.ifs = append(s.ng.ifs, ni)
	return nil
}

func (s *NgReader) ngStats(body []byte, start int64) error {
	if len(body) < 12 {
		return s.stop("statistics block at offset %d is too short", start)
	}
	order := s.ng.order
	id := order.Uint32(body[0:4])
	if int(id) >= len(s.ng.ifs) || id > 1<<20 {
		s.warnf("statistics block at offset %d refers to unknown interface %d; ignored", start, id)
		return nil
	}
	opts := ngOpts{b: body[12:], order: order}
	for {
		code, val, ok, err := opts.next()
		if err != nil {
			s.warnf("statistics block at offset %d: %v; ignored", start, err)
			return nil
		}
		if !ok {
			return nil
		}
		g := s.ng.ifs[id].global
		switch {
		case code == 5 && len(val) == 8: // isb_ifdrop
			s.ifaces[g].Drops = order.Uint64(val)
			s.ifaces[g].HasDrops = true
		case (code == 2 || code == 3) && len(val) == 8: // isb_starttime, isb_endtime
			ts := s.ng.ifs[id].ngTime(uint64(order.Uint32(val[0:4]))<<32 | uint64(order.Uint32(val[4:8])))
			if code == 2 {
				s.ifaces[g].Start = ts
			} else {
				s.ifaces[g].End = ts
			}
		}
	}
}

// ngTime converts a timestamp in the interface's units to ns since epoch.
func (ni *ngIface) ngTime(ts uint64) int64 {
	var ns uint64
	switch {
	case ni.binary && ni.shift == 0:
		ns = ts * 1e9
	case ni.binary:
		// ts/2^k seconds: whole seconds, then the fraction with 128-bit math.
		whole := ts >> ni.shift
		hi, lo := bits.Mul64(ts&(1<<ni.shift-1), 1e9)
		ns = whole*1e9 + (hi<<(64-ni.shift) | lo>>ni.shift)
	case ni.div == 1: // µs, ns and coarser: no division per frame
		ns = ts * ni.mul
	default:
		ns = ts * ni.mul / ni.div
	}
	return int64(ns) + ni.offset
}

// ngPacket fills rf with the packet block of type typ (body: between its
// length fields), record number num.
func (s *NgReader) ngPacket(rf *capture.RawFrame, typ uint32, body []byte, num int) error {
	ng := &s.ng
	var (
		ifid            uint32
		ts              uint64
		caplen, wirelen uint32
		data            []byte
		opts            []byte
		hasTime         = true
	)
	switch typ {
	case ngBlockEPB, ngBlockPB:
		if len(body) < 20 {
			return s.stop("frame %d: packet block too short", num)
		}
		if typ == ngBlockEPB {
			ifid = ng.u32(body[0:4])
		} else {
			ifid = uint32(ng.order.Uint16(body[0:2]))
		}
		ts = uint64(ng.u32(body[4:8]))<<32 | uint64(ng.u32(body[8:12]))
		caplen, wirelen = ng.u32(body[12:16]), ng.u32(body[16:20])
		if uint64(caplen) > uint64(len(body)-20) {
			return s.stop("frame %d: captured length %d exceeds its block", num, caplen)
		}
		data = body[20 : 20+caplen]
		if pad := (int(caplen) + 3) &^ 3; 20+pad < len(body) {
			opts = body[20+pad:]
		}
	case ngBlockSPB:
		if len(body) < 4 {
			return s.stop("frame %d: simple packet block too short", num)
		}
		wirelen = ng.u32(body[0:4])
		caplen = uint32(len(body) - 4)
		if wirelen < caplen {
			caplen = wirelen
		}
		if len(ng.ifs) > 0 && ng.ifs[0].snaplen > 0 && uint32(ng.ifs[0].snaplen) < caplen {
			caplen = uint32(ng.ifs[0].snaplen)
		}
		data = body[4 : 4+caplen]
		hasTime = false
	}
	if int(ifid) >= len(ng.ifs) {
		return s.stop("frame %d refers to interface %d, but its section has %d", num, ifid, len(ng.ifs))
	}
	ni := &ng.ifs[ifid]
	// Field by field, as Reader.frame.
	rf.Data, rf.WireLen, rf.Iface = data, int(wirelen), ni.global
	rf.LinkType, rf.Dir, rf.Num = s.ifaces[ni.global].LinkType, correlate.DirUnknown, num
	if hasTime {
		rf.Time = ni.ngTime(ts)
		ng.lastTime = rf.Time
	} else {
		// Simple packet blocks have no timestamp: reuse the previous frame's
		// so ordering holds; the correlator must not trust it as a hop time.
		rf.Time = ng.lastTime
		if !ng.spbWarned {
			ng.spbWarned = true
			s.warnf("frame %d and other simple packet blocks carry no timestamp; the previous frame's time is used", num)
		}
	}
	for o := (ngOpts{b: opts, order: ng.order}); len(o.b) > 0; {
		code, val, ok, err := o.next()
		if err != nil || !ok {
			break // a bad option list does not spoil the packet itself
		}
		if code == 2 && len(val) == 4 { // epb_flags / pack_flags
			switch ng.u32(val) & 3 {
			case 1:
				rf.Dir = correlate.DirIn
			case 2:
				rf.Dir = correlate.DirOut
			}
		}
	}
	s.num = num
	s.linkMeta(rf, ni.global)
	return nil
}
