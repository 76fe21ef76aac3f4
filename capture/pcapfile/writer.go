package pcapfile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// Writers for evidence files. Both buffer internally and write nothing per
// frame but fixed-size headers and the frame bytes, so they do not allocate.

var fileLE = binary.LittleEndian

// Writer writes a nanosecond-resolution pcap file.
type Writer struct {
	w       *bufio.Writer
	snaplen int
	hdr     [16]byte
}

// NewWriter writes the file header. Call Flush when done.
func NewWriter(w io.Writer, linkType capture.LinkType, snaplen int) (*Writer, error) {
	if snaplen <= 0 || snaplen > MaxFrameBytes {
		snaplen = MaxFrameBytes
	}
	pw := &Writer{w: bufio.NewWriterSize(w, 64<<10), snaplen: snaplen}
	var h [24]byte
	fileLE.PutUint32(h[0:4], 0xa1b23c4d) // nanosecond magic
	fileLE.PutUint16(h[4:6], 2)
	fileLE.PutUint16(h[6:8], 4)
	fileLE.PutUint32(h[16:20], uint32(snaplen))
	fileLE.PutUint32(h[20:24], uint32(linkType))
	if _, err := pw.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return pw, nil
}

// WriteFrame appends one record; data beyond the snaplen is cut.
func (pw *Writer) WriteFrame(rf capture.RawFrame) error {
	data := rf.Data
	if len(data) > pw.snaplen {
		data = data[:pw.snaplen]
	}
	wire := max(rf.WireLen, len(rf.Data))
	fileLE.PutUint32(pw.hdr[0:4], uint32(rf.Time/1e9))
	fileLE.PutUint32(pw.hdr[4:8], uint32(rf.Time%1e9))
	fileLE.PutUint32(pw.hdr[8:12], uint32(len(data)))
	fileLE.PutUint32(pw.hdr[12:16], uint32(wire))
	if _, err := pw.w.Write(pw.hdr[:]); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	if _, err := pw.w.Write(data); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}

// Flush writes buffered records to the underlying writer.
func (pw *Writer) Flush() error { return pw.w.Flush() }

// NgWriter writes one section with one interface per capture point, in
// path order, so a reader recovers the order from the file alone.
type NgWriter struct {
	w        *bufio.Writer
	ifaces   []capture.Interface
	lastTime int64
	hdr      [36]byte
	closed   bool
}

// NewNgWriter writes the section header and one interface block per
// point: ifaces[i] describes pathOrder[i] (if_name = the point name,
// if_description = ifaces[i].Description). WriteFrame's iface indexes both.
// comments become more section comments (opt_comment), after the path
// order.
func NewNgWriter(w io.Writer, ifaces []capture.Interface, pathOrder []string, comments ...string) (*NgWriter, error) {
	if len(ifaces) != len(pathOrder) {
		return nil, fmt.Errorf("pcapng writer: %d interfaces for %d path points", len(ifaces), len(pathOrder))
	}
	for _, p := range pathOrder {
		if p == "" || strings.Contains(p, ",") {
			return nil, fmt.Errorf("pcapng writer: point name %q is empty or contains a comma", p)
		}
	}
	pw := &NgWriter{w: bufio.NewWriterSize(w, 64<<10), ifaces: append([]capture.Interface(nil), ifaces...)}
	var shb []byte
	shb = fileLE.AppendUint32(shb, ngByteOrderMagic)
	shb = fileLE.AppendUint16(shb, 1)
	shb = fileLE.AppendUint16(shb, 0)
	shb = fileLE.AppendUint64(shb, ^uint64(0)) // section length unknown
	shb = appendOpt(shb, 4, []byte("pathtrace"))
	shb = appendOpt(shb, 1, []byte(pathOrderPrefix+strings.Join(pathOrder, ",")))
	for _, c := range comments {
		if len(c) > 0xffff {
			return nil, fmt.Errorf("pcapng writer: section comment of %d bytes, at most 65535", len(c))
		}
		shb = appendOpt(shb, 1, []byte(c))
	}
	shb = appendOpt(shb, 0, nil)
	if err := pw.block(ngBlockSHB, shb); err != nil {
		return nil, err
	}
	for i, ifc := range ifaces {
		var idb []byte
		idb = fileLE.AppendUint16(idb, uint16(ifc.LinkType))
		idb = fileLE.AppendUint16(idb, 0)
		snap := ifc.Snaplen
		if snap <= 0 || snap > MaxFrameBytes {
			snap = MaxFrameBytes
		}
		pw.ifaces[i].Snaplen = snap
		idb = fileLE.AppendUint32(idb, uint32(snap))
		idb = appendOpt(idb, 2, []byte(pathOrder[i]))
		if ifc.Description != "" {
			idb = appendOpt(idb, 3, []byte(ifc.Description))
		}
		idb = appendOpt(idb, 9, []byte{9}) // if_tsresol: nanoseconds
		idb = appendOpt(idb, 0, nil)
		if err := pw.block(ngBlockIDB, idb); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

func appendOpt(b []byte, code uint16, val []byte) []byte {
	b = fileLE.AppendUint16(b, code)
	b = fileLE.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return append(b, zeroPad[:(4-len(val)%4)%4]...)
}

// block writes a non-packet block (setup and close only: it allocates).
func (pw *NgWriter) block(typ uint32, body []byte) error {
	var b []byte
	n := uint32(12 + len(body))
	b = fileLE.AppendUint32(b, typ)
	b = fileLE.AppendUint32(b, n)
	b = append(b, body...)
	b = fileLE.AppendUint32(b, n)
	if _, err := pw.w.Write(b); err != nil {
		return fmt.Errorf("write pcapng block: %w", err)
	}
	return nil
}

var zeroPad [4]byte

// WriteFrame appends an enhanced packet block on interface iface, with
// epb_flags carrying rf.Dir when known.
func (pw *NgWriter) WriteFrame(iface int, rf capture.RawFrame) error {
	if iface < 0 || iface >= len(pw.ifaces) {
		return fmt.Errorf("pcapng writer: interface %d out of range (%d)", iface, len(pw.ifaces))
	}
	data := rf.Data
	if len(data) > pw.ifaces[iface].Snaplen {
		data = data[:pw.ifaces[iface].Snaplen]
	}
	pad := (4 - len(data)%4) % 4
	var flags uint32
	switch rf.Dir {
	case correlate.DirIn:
		flags = 1
	case correlate.DirOut:
		flags = 2
	}
	optLen := 0
	if flags != 0 {
		optLen = 12 // epb_flags + opt_endofopt
	}
	total := 28 + len(data) + pad + optLen + 4
	ts := uint64(rf.Time)
	h := pw.hdr[:]
	fileLE.PutUint32(h[0:4], ngBlockEPB)
	fileLE.PutUint32(h[4:8], uint32(total))
	fileLE.PutUint32(h[8:12], uint32(iface))
	fileLE.PutUint32(h[12:16], uint32(ts>>32))
	fileLE.PutUint32(h[16:20], uint32(ts))
	fileLE.PutUint32(h[20:24], uint32(len(data)))
	fileLE.PutUint32(h[24:28], uint32(max(rf.WireLen, len(rf.Data))))
	if _, err := pw.w.Write(h[:28]); err != nil {
		return fmt.Errorf("write pcapng frame: %w", err)
	}
	pw.w.Write(data)
	pw.w.Write(zeroPad[:pad])
	t := h[:0]
	if flags != 0 {
		t = fileLE.AppendUint16(t, 2)
		t = fileLE.AppendUint16(t, 4)
		t = fileLE.AppendUint32(t, flags)
		t = fileLE.AppendUint32(t, 0)
	}
	t = fileLE.AppendUint32(t, uint32(total))
	if _, err := pw.w.Write(t); err != nil {
		return fmt.Errorf("write pcapng frame: %w", err)
	}
	if rf.Time > pw.lastTime {
		pw.lastTime = rf.Time
	}
	return nil
}

// SetDrops records the kernel drops of an interface for the statistics
// blocks Close writes (known only when capturing ends).
func (pw *NgWriter) SetDrops(iface int, drops uint64) {
	if iface >= 0 && iface < len(pw.ifaces) {
		pw.ifaces[iface].Drops, pw.ifaces[iface].HasDrops = drops, true
	}
}

// SetWindow records when an interface was capturing (ns since the epoch),
// written as isb_starttime/isb_endtime so an analysis of the file knows the
// point's coverage even where it saw no frame.
func (pw *NgWriter) SetWindow(iface int, start, end int64) {
	if iface >= 0 && iface < len(pw.ifaces) {
		pw.ifaces[iface].Start, pw.ifaces[iface].End = start, end
	}
}

// Flush writes buffered frames to the underlying writer.
func (pw *NgWriter) Flush() error { return pw.w.Flush() }

// Close writes an interface statistics block per interface (with if_drop
// where drops are known) and flushes. It does not close the underlying writer.
func (pw *NgWriter) Close() error {
	if pw.closed {
		return nil
	}
	pw.closed = true
	ts := uint64(pw.lastTime)
	for i, ifc := range pw.ifaces {
		var isb []byte
		isb = fileLE.AppendUint32(isb, uint32(i))
		isb = fileLE.AppendUint32(isb, uint32(ts>>32))
		isb = fileLE.AppendUint32(isb, uint32(ts))
		opts := false
		for _, o := range []struct {
			code uint16
			v    int64
			ok   bool
		}{{2, ifc.Start, ifc.End != 0}, {3, ifc.End, ifc.End != 0}} {
			if o.ok {
				// pcapng timestamps: high 32 bits first, in if_tsresol units (ns)
				isb = appendOpt(isb, o.code, fileLE.AppendUint32(fileLE.AppendUint32(nil, uint32(uint64(o.v)>>32)), uint32(o.v)))
				opts = true
			}
		}
		if ifc.HasDrops {
			isb = appendOpt(isb, 5, fileLE.AppendUint64(nil, ifc.Drops))
			opts = true
		}
		if opts {
			isb = appendOpt(isb, 0, nil)
		}
		if err := pw.block(ngBlockISB, isb); err != nil {
			return err
		}
	}
	return pw.w.Flush()
}
