package pcapfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// The file readers are our own rather than pcapgo's: a hostile or broken file
// must never make us allocate what it merely claims, and truncation must be
// reported at the exact frame where it happens.

// MaxFrameBytes is the largest captured frame the readers accept; it matches
// Wireshark's limit for ordinary link types. A record claiming more ends the
// file with a warning instead of an allocation of the claimed size.
const MaxFrameBytes = 256 << 10

// maxBlockBytes bounds a pcapng block we parse (packet data plus options);
// larger blocks of types we do not parse are skipped without buffering.
const maxBlockBytes = MaxFrameBytes + 64<<10

const readBufBytes = 64 << 10

// SectionInfo describes one pcapng section (Sections is empty for pcap).
type SectionInfo struct {
	UserAppl  string // shb_userappl, "pathtrace" for our own files
	Hardware  string // shb_hardware
	OS        string // shb_os
	Comments  []string
	PathOrder []string // from a "pathtrace path order: a,b,c" comment
	BigEndian bool
}

// pathOrderPrefix marks the section comment carrying the point order of a
// file pathtrace wrote.
const pathOrderPrefix = "pathtrace path order: "

// input is what both readers share: the (possibly gzip-compressed) byte
// stream with its progress count, the record buffer, interfaces, warnings
// and how reading ended.
type input struct {
	name   string
	format string
	closer io.Closer
	count  *countingReader
	total  int64
	br     *bufio.Reader
	gz     *gzip.Reader

	ifaces   []capture.Interface
	warnings []string

	buf      []byte // reused for every record; grows up to maxBlockBytes
	view     []byte // pcap: bytes the read buffer holds beyond the last record read from it
	vpos     int    // how much of view was read
	frames   int    // frames returned so far
	num      int    // records counted so far (tshark's frame.number of the last one)
	err      error  // sticky terminal error (io.EOF included)
	cutCause error
	snaplen  int // a pcap file's snaplen, for the interfaces its SLL2 ifindexes become
	ifsll2   []sll2Key
}

// File is an open capture file: a classic pcap (*Reader) or a pcapng
// (*NgReader), either one gzip-compressed.
type File interface {
	capture.Source
	// Name is the path or name the file was opened with.
	Name() string
	// Format names the container: pcap, pcapng, pcap.gz, pcapng.gz.
	Format() string
	// Sections lists the pcapng sections seen so far (nil for pcap).
	Sections() []SectionInfo
	// Progress reports bytes consumed from the file (compressed bytes for
	// gzip) and the file size, -1 when unknown.
	Progress() (read, total int64)
}

// sll2Key maps one (container interface, SLL2 ifindex) to its Interface.
type sll2Key struct {
	container int // index of the pcapng IDB interface, -1 for pcap
	ifindex   int32
	global    int
}

// countingReader counts bytes for Progress, which another goroutine (the
// merger's caller) may read while a reader goroutine reads the file.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

var (
	_ File = (*Reader)(nil)
	_ File = (*NgReader)(nil)
)

// Open opens a capture file, detecting pcap, pcapng and gzip by magic.
func Open(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	var size int64 = -1
	if st, err := f.Stat(); err == nil {
		if st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("open capture %s: is a directory", path)
		}
		size = st.Size()
	}
	s, err := NewReader(path, f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.(closerSetter).setCloser(f)
	return s, nil
}

type closerSetter interface{ setCloser(io.Closer) }

func (s *input) setCloser(c io.Closer) { s.closer = c }

// NewReader reads a capture from r (a pipe, a test buffer); name is used in
// warnings and errors. size is the byte count for Progress, -1 if unknown.
func NewReader(name string, r io.Reader, size int64) (File, error) {
	s := &input{name: name, total: size, count: &countingReader{r: r}}
	s.br = bufio.NewReaderSize(s.count, readBufBytes)
	magic, err := s.br.Peek(4)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(s.br)
		if err != nil {
			return nil, fmt.Errorf("open %s: gzip header: %w", name, err)
		}
		s.gz = gz
		s.br = bufio.NewReaderSize(gz, readBufBytes)
		magic, err = s.br.Peek(4)
		if err != nil && len(magic) < 4 {
			if len(magic) == 0 && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
				return nil, fmt.Errorf("open %s: gzip stream holds no capture data", name)
			}
			if err != io.EOF {
				return nil, fmt.Errorf("open %s: gzip: %w", name, err)
			}
		}
		return s.detect(magic, ".gz")
	}
	if err != nil && len(magic) < 4 {
		if len(magic) == 0 && err == io.EOF {
			return nil, fmt.Errorf("open %s: empty file (0 bytes), not a capture", name)
		}
		if err != io.EOF {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
	}
	return s.detect(magic, "")
}

// detect starts the reader the magic names.
func (s *input) detect(magic []byte, suffix string) (File, error) {
	if len(magic) == 4 {
		if _, ok := pcapMagic(magic); ok {
			s.format = "pcap" + suffix
			r := &Reader{input: *s}
			r.start()
			return r, r.err0()
		}
		if binary.BigEndian.Uint32(magic) == ngBlockSHB {
			s.format = "pcapng" + suffix
			r := &NgReader{input: *s}
			r.start()
			return r, r.err0()
		}
		switch binary.BigEndian.Uint32(magic) {
		case 0x1c0001ac, 0xac01001c, 0x1c0001ab, 0xab01001c:
			return nil, fmt.Errorf("open %s: IXIA lcap format is not supported (first bytes % x); convert with editcap -F pcap", s.name, magic)
		}
	}
	return nil, fmt.Errorf("open %s: not a pcap or pcapng file (first bytes % x)", s.name, magic)
}

// err0 turns a failure while reading the file header into an Open error,
// except truncation, which is reported as a warning with zero frames.
func (s *input) err0() error {
	if s.err != nil && s.err != io.EOF {
		return s.err
	}
	return nil
}

// done ends a Next: the first error is kept for good (io.EOF at the end,
// Warnings say why it ended early; another error when the file is
// unreadable from the start).
func (s *input) done(rf capture.RawFrame, err error) (capture.RawFrame, error) {
	if err != nil {
		s.err = err
		return capture.RawFrame{}, err
	}
	s.frames++
	return rf, nil
}

// endBatch ends a NextBatch that read n frames in place: with none, the
// one next reads (the slow path) goes in rfs[0], or how reading ended.
func (s *input) endBatch(rfs []capture.RawFrame, n int, next func() (capture.RawFrame, error)) (int, error) {
	if n > 0 {
		return n, nil
	}
	if s.err != nil || len(rfs) == 0 {
		return 0, s.err
	}
	rf, err := s.done(next())
	if err != nil {
		return 0, err
	}
	rfs[0] = rf
	return 1, nil
}

// endStamps ends a Stamps that found no record in view: the one next reads
// (the slow path), or how reading ended.
func (s *input) endStamps(ts []int64, ifaces []int, next func() (capture.RawFrame, error)) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	rf, err := s.done(next())
	if err != nil {
		return 0, err
	}
	ts[0], ifaces[0] = rf.Time, rf.Iface
	return 1, nil
}

// Interfaces lists the interfaces seen so far; it grows while reading.
func (s *input) Interfaces() []capture.Interface {
	return append([]capture.Interface(nil), s.ifaces...)
}

// Warnings lists what made reading stop early or skip data.
func (s *input) Warnings() []string { return append([]string(nil), s.warnings...) }

// Format names the container: pcap, pcapng, pcap.gz, pcapng.gz.
func (s *input) Format() string { return s.format }

// Name is the path or name the source was opened with.
func (s *input) Name() string { return s.name }

// Progress reports bytes consumed from the file (compressed bytes for gzip)
// and the file size, -1 when unknown.
func (s *input) Progress() (read, total int64) { return s.count.n.Load(), s.total }

// Close releases the file.
func (s *input) Close() error {
	if s.err == nil {
		s.err = errors.New("capture: source closed")
	}
	var err error
	if s.gz != nil {
		err = s.gz.Close()
	}
	if s.closer != nil {
		if cerr := s.closer.Close(); cerr != nil {
			err = cerr
		}
		s.closer = nil
	}
	return err
}

func (s *input) warnf(format string, args ...any) {
	s.warnings = append(s.warnings, s.name+": "+fmt.Sprintf(format, args...))
}

// stop ends the source at a corrupt spot: a warning when frames were
// read, an error when nothing could be.
func (s *input) stop(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if s.frames == 0 {
		return fmt.Errorf("read %s: %s", s.name, msg)
	}
	s.warnf("%s; stopped after %d frames", msg, s.frames)
	return io.EOF
}

// truncated ends the source at a cut: what was complete stays valid.
func (s *input) truncated(where string) error {
	if s.cutCause != nil {
		s.warnf("compressed data broken inside %s (%v); %d frames read", where, s.cutCause, s.frames)
	} else {
		s.warnf("file ends inside %s (truncated capture); %d frames read", where, s.frames)
	}
	return io.EOF
}

// readFull fills p and reports how the read ended: ok, clean EOF (nothing
// read), or cut (partial read; for gzip also a damaged stream, whose cause
// is kept in s.cutCause for the warning).
func (s *input) readFull(p []byte) (ok, cleanEOF bool, err error) {
	n, err := io.ReadFull(s.br, p)
	switch {
	case err == nil:
		return true, false, nil
	case err == io.EOF && n == 0:
		return false, true, nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return false, false, nil
	case s.gz != nil:
		// A damaged compressed stream is a cut: what came before is good.
		s.cutCause = err
		return false, false, nil
	default:
		return false, false, fmt.Errorf("read %s: %w", s.name, err)
	}
}

// record returns the reusable buffer sized n (n <= maxBlockBytes).
func (s *input) record(n int) []byte {
	if cap(s.buf) < n {
		c := 2048
		for c < n {
			c *= 2
		}
		if c > maxBlockBytes {
			c = maxBlockBytes
		}
		s.buf = make([]byte, c)
	}
	return s.buf[:n]
}

// sllDir maps the Linux packet type of an SLL/SLL2 header to a direction.
func sllDir(pkttype uint16) correlate.LinkDir {
	switch pkttype {
	case 0, 1, 2, 3:
		return correlate.DirIn
	case 4:
		return correlate.DirOut
	}
	return correlate.DirUnknown
}

// linkMeta fills Dir (SLL, SLL2) and, for SLL2, the per-ifindex interface.
func (s *input) linkMeta(rf *capture.RawFrame, container int) {
	switch rf.LinkType {
	case capture.LinkTypeLinuxSLL:
		if len(rf.Data) >= 16 {
			rf.Dir = sllDir(binary.BigEndian.Uint16(rf.Data[0:2]))
		}
	case capture.LinkTypeSLL2:
		if len(rf.Data) >= 20 {
			rf.Dir = sllDir(uint16(rf.Data[10]))
		}
		rf.Iface = s.sll2IfaceOf(container, rf.Data)
	}
}

// sll2IfaceOf is the interface of an SLL2 frame (data from its header on)
// in container: one per ifindex.
func (s *input) sll2IfaceOf(container int, data []byte) int {
	ifindex := int32(-1)
	if len(data) >= 20 {
		ifindex = int32(binary.BigEndian.Uint32(data[4:8]))
	}
	return s.sll2Iface(container, ifindex)
}

func (s *input) sll2Iface(container int, ifindex int32) int {
	for _, k := range s.ifsll2 {
		if k.container == container && k.ifindex == ifindex {
			return k.global
		}
	}
	ifc := capture.Interface{IfIndex: int(ifindex), LinkType: capture.LinkTypeSLL2, Snaplen: s.snaplen}
	if container >= 0 {
		ifc.Snaplen = s.ifaces[container].Snaplen
	}
	s.ifaces = append(s.ifaces, ifc)
	g := len(s.ifaces) - 1
	s.ifsll2 = append(s.ifsll2, sll2Key{container: container, ifindex: ifindex, global: g})
	return g
}

// ExpandPaths replaces each directory by the capture files directly in it
// (recognised by magic, sorted by name); files pass through unchecked.
func ExpandPaths(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("capture path: %w", err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("capture directory: %w", err)
		}
		var found []string
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(a, e.Name())
			if isCaptureFile(p) {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("capture directory %s: no pcap or pcapng files in it", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// isCaptureFile checks the magic (inside gzip too).
func isCaptureFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [4]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return false
	}
	if head[0] == 0x1f && head[1] == 0x8b {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			return false
		}
		defer gz.Close()
		if _, err := io.ReadFull(gz, head[:]); err != nil {
			return false
		}
	}
	_, ok := pcapMagic(head[:])
	return ok || bytes.Equal(head[:], []byte{0x0a, 0x0d, 0x0d, 0x0a})
}
