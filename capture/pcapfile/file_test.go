package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

func ftPcapBytes(t testing.TB, frames []capture.RawFrame) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, capture.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range frames {
		if err := w.WriteFrame(rf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ftPcapngBytes writes frames on one interface and returns the file plus the
// end offset of every frame's block.
func ftPcapngBytes(t testing.TB, frames []capture.RawFrame) []byte {
	var buf bytes.Buffer
	w, err := NewNgWriter(&buf, []capture.Interface{{LinkType: capture.LinkTypeEthernet, Description: "d"}}, []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range frames {
		if err := w.WriteFrame(0, rf); err != nil {
			t.Fatal(err)
		}
	}
	w.SetDrops(0, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ftBlockEnds lists where each pcap record or pcapng block ends, and which of
// them are frames.
func ftBlockEnds(data []byte, ng bool) (ends []int, isFrame []bool) {
	if !ng {
		off := 24
		ends = append(ends, off)
		isFrame = append(isFrame, false)
		for off < len(data) {
			off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
			ends, isFrame = append(ends, off), append(isFrame, true)
		}
		return
	}
	for off := 0; off < len(data); {
		typ := binary.LittleEndian.Uint32(data[off:])
		off += int(binary.LittleEndian.Uint32(data[off+4:]))
		ends, isFrame = append(ends, off), append(isFrame, typ == ngBlockEPB)
	}
	return
}

// TestTruncationEveryOffset cuts files at every byte and checks that exactly
// the frames wholly before the cut come back, then io.EOF with a warning
// naming the file unless the cut falls between blocks.
func TestTruncationEveryOffset(t *testing.T) {
	frames := ftFrames(6)
	for _, tc := range []struct {
		name string
		data []byte
		ng   bool
	}{
		{"pod1.pcap", ftPcapBytes(t, frames), false},
		{"pod1.pcapng", ftPcapngBytes(t, frames), true},
	} {
		ends, isFrame := ftBlockEnds(tc.data, tc.ng)
		for cut := 0; cut <= len(tc.data); cut++ {
			src, err := NewReader(tc.name, bytes.NewReader(tc.data[:cut]), int64(cut))
			if cut < 4 {
				if err == nil {
					t.Fatalf("%s cut at %d: opened a file without a complete magic", tc.name, cut)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s cut at %d: open: %v", tc.name, cut, err)
			}
			want, boundary := 0, false
			for i, e := range ends {
				if e <= cut && isFrame[i] {
					want++
				}
				boundary = boundary || e == cut
			}
			var got []capture.RawFrame
			for {
				rf, err := src.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s cut at %d: Next: %v", tc.name, cut, err)
				}
				got = append(got, rf)
			}
			if len(got) != want {
				t.Fatalf("%s cut at %d: %d frames, want %d", tc.name, cut, len(got), want)
			}
			for i, rf := range got {
				if rf.Num != i+1 || rf.Time != frames[i].Time {
					t.Fatalf("%s cut at %d: frame %d num %d time %d", tc.name, cut, i+1, rf.Num, rf.Time)
				}
			}
			ws := src.Warnings()
			if boundary && len(ws) != 0 {
				t.Fatalf("%s cut at block boundary %d: warnings %q", tc.name, cut, ws)
			}
			if !boundary {
				wantMsg := fmt.Sprintf("(truncated capture); %d frames read", want)
				if len(ws) != 1 || !strings.HasPrefix(ws[0], tc.name+": file ends inside ") || !strings.HasSuffix(ws[0], wantMsg) {
					t.Fatalf("%s cut at %d: warnings %q, want one ending %q", tc.name, cut, ws, wantMsg)
				}
				if i := slices.IndexFunc(ends, func(e int) bool { return e > cut }); isFrame[i] && !tc.ng {
					if !strings.Contains(ws[0], fmt.Sprintf("frame %d ", want+1)) {
						t.Fatalf("%s cut at %d: warning %q does not name frame %d", tc.name, cut, ws[0], want+1)
					}
				}
			}
			if r, total := src.Progress(); r != int64(cut) || total != int64(cut) {
				t.Fatalf("%s cut at %d: progress %d/%d", tc.name, cut, r, total)
			}
			src.Close()
		}
	}
}

func TestTruncatedGzip(t *testing.T) {
	frames := ftFrames(40)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(ftPcapngBytes(t, frames))
	zw.Close()
	data := gz.Bytes()
	src, err := NewReader("x.pcapng.gz", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if src.Format() != "pcapng.gz" {
		t.Errorf("format %q", src.Format())
	}
	if got := ftReadAll(t, src); len(got) != len(frames) || len(src.Warnings()) != 0 {
		t.Fatalf("whole gzip: %d frames, warnings %q", len(got), src.Warnings())
	}
	for cut := 20; cut < len(data); cut += 37 {
		src, err := NewReader("x.pcapng.gz", bytes.NewReader(data[:cut]), int64(cut))
		if err != nil {
			continue // cut before the first decompressed bytes
		}
		got := ftReadAll(t, src)
		for i, rf := range got {
			if rf.Time != frames[i].Time || !bytes.Equal(rf.Data, frames[i].Data) {
				t.Fatalf("gzip cut at %d: frame %d differs", cut, i+1)
			}
		}
		if len(src.Warnings()) != 1 {
			t.Fatalf("gzip cut at %d: %d frames, warnings %q", cut, len(got), src.Warnings())
		}
	}
}

func ftHostileFiles() map[string][]byte {
	le := binary.LittleEndian
	pcapHdr := func(lt uint32) []byte {
		h := le.AppendUint32(nil, 0xa1b2c3d4)
		h = le.AppendUint16(h, 2)
		h = le.AppendUint16(h, 4)
		h = le.AppendUint64(h, 0)
		h = le.AppendUint32(h, 0xffffffff)
		return le.AppendUint32(h, lt)
	}
	shb := func(seclen uint64) []byte {
		b := le.AppendUint32(nil, ngBlockSHB)
		b = le.AppendUint32(b, 28)
		b = le.AppendUint32(b, ngByteOrderMagic)
		b = le.AppendUint16(b, 1)
		b = le.AppendUint16(b, 0)
		b = le.AppendUint64(b, seclen)
		return le.AppendUint32(b, 28)
	}
	idb := func() []byte {
		b := le.AppendUint32(nil, ngBlockIDB)
		b = le.AppendUint32(b, 20)
		b = le.AppendUint32(b, 1)
		b = le.AppendUint32(b, 0xffffffff)
		return le.AppendUint32(b, 20)
	}
	f := map[string][]byte{}
	// A pcap record claiming 4 GiB of data.
	rec := le.AppendUint64(nil, 0)
	rec = le.AppendUint32(rec, 0xfffffff0)
	rec = le.AppendUint32(rec, 0xfffffff0)
	f["huge-record.pcap"] = append(pcapHdr(1), rec...)
	// A pcapng section claiming 10 GB, then an EPB claiming 4 GiB.
	epb := le.AppendUint32(nil, ngBlockEPB)
	epb = le.AppendUint32(epb, 0xfffffff0)
	epb = append(epb, make([]byte, 64)...)
	f["huge-epb.pcapng"] = slices.Concat(shb(10_000_000_000), idb(), epb)
	// An unknown block claiming 4 GiB: skipped by streaming, then cut.
	unk := le.AppendUint32(nil, 0x12345678)
	unk = le.AppendUint32(unk, 0xfffffff0)
	f["huge-unknown-block.pcapng"] = slices.Concat(shb(10_000_000_000), idb(), unk, make([]byte, 100))
	// An IDB whose option claims more than its block.
	badopt := le.AppendUint32(nil, ngBlockIDB)
	badopt = le.AppendUint32(badopt, 28)
	badopt = le.AppendUint32(badopt, 1)
	badopt = le.AppendUint32(badopt, 0)
	badopt = le.AppendUint16(badopt, 2)
	badopt = le.AppendUint16(badopt, 0xfff0)
	badopt = le.AppendUint32(badopt, 0)
	badopt = le.AppendUint32(badopt, 28)
	f["bad-option.pcapng"] = slices.Concat(shb(0), badopt)
	return f
}

// TestHostileFilesBoundedAllocation: files claiming huge sizes must not
// make the reader allocate them.
func TestHostileFilesBoundedAllocation(t *testing.T) {
	for name, data := range ftHostileFiles() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		src, err := NewReader(name, bytes.NewReader(data), int64(len(data)))
		n := 0
		if err == nil {
			for {
				_, err = src.Next()
				if err != nil {
					break
				}
				n++
			}
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: allocated %d bytes", name, grew)
		}
		if n != 0 {
			t.Errorf("%s: returned %d frames", name, n)
		}
		if err == nil || (err == io.EOF && len(src.Warnings()) == 0) {
			t.Errorf("%s: no error or warning (err %v)", name, err)
		}
		t.Logf("%s: %v %q", name, err, func() []string {
			if src != nil {
				return src.Warnings()
			}
			return nil
		}())
	}
}

func TestUnknownFormatError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(path, []byte("hello world"), 0o644)
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "68 65 6c 6c") {
		t.Errorf("error %v should name the file and its first bytes", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pcap")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}

// ftSLL2Frame builds an SLL2 header with the given ifindex and packet type.
func ftSLL2Frame(ifindex uint32, pkttype byte) []byte {
	b := make([]byte, 20+28)
	binary.BigEndian.PutUint16(b[0:2], 0x0800)
	binary.BigEndian.PutUint32(b[4:8], ifindex)
	binary.BigEndian.PutUint16(b[8:10], 1)
	b[10] = pkttype
	b[11] = 6
	b[20] = 0x45
	return b
}

func TestSLL2InterfacesAndDirection(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, capture.LinkTypeSLL2, 0)
	for i, f := range []struct {
		ifindex uint32
		pkttype byte
	}{{7, 0}, {9, 4}, {7, 4}, {3, 3}, {9, 1}} {
		w.WriteFrame(capture.RawFrame{Data: ftSLL2Frame(f.ifindex, f.pkttype), Time: int64(i)})
	}
	w.Flush()
	src, err := NewReader("any.pcap", &buf, -1)
	if err != nil {
		t.Fatal(err)
	}
	got := ftReadAll(t, src)
	wantIface := []int{0, 1, 0, 2, 1}
	wantDir := []correlate.LinkDir{correlate.DirIn, correlate.DirOut, correlate.DirOut, correlate.DirIn, correlate.DirIn}
	for i, rf := range got {
		if rf.Iface != wantIface[i] || rf.Dir != wantDir[i] || rf.LinkType != capture.LinkTypeSLL2 {
			t.Errorf("frame %d: iface %d dir %d, want %d %d", i+1, rf.Iface, rf.Dir, wantIface[i], wantDir[i])
		}
	}
	ifs := src.Interfaces()
	if len(ifs) != 3 || ifs[0].IfIndex != 7 || ifs[1].IfIndex != 9 || ifs[2].IfIndex != 3 || ifs[0].Name != "" {
		t.Errorf("interfaces %+v", ifs)
	}
}

// TestRealSLL2Capture checks a tcpdump -i any capture from the corpus when
// it is available: ifindex 1 (lo) and 26 in order of appearance.
func TestRealSLL2Capture(t *testing.T) {
	dir := testenv.Corpus(t)
	src, err := Open(filepath.Join(dir, "zeek/linux_dlt_sll2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	got := ftReadAll(t, src)
	ifs := src.Interfaces()
	var idx []int
	for _, i := range ifs {
		idx = append(idx, i.IfIndex)
	}
	if len(got) != 6 || !slices.Contains(idx, 1) || !slices.Contains(idx, 26) || len(ifs) != 2 {
		t.Errorf("%d frames, ifindexes %v", len(got), idx)
	}
	for _, rf := range got {
		if rf.Dir == correlate.DirUnknown {
			t.Errorf("frame %d: no direction", rf.Num)
		}
	}
}

func TestPcapngTimestampResolutions(t *testing.T) {
	cases := []struct {
		res  byte
		ts   uint64
		want int64
	}{
		{6, 1_700_000_000_123_456, 1_700_000_000_123_456_000},
		{9, 1_700_000_000_123_456_789, 1_700_000_000_123_456_789},
		{3, 1_700_000_000_123, 1_700_000_000_123_000_000},
		{12, 1_700_000_000_123_456_789, 1_700_000_000_123_456},
		{0x80 | 8, 256*1_700_000_000 + 128, 1_700_000_000_500_000_000},
		{0x80 | 30, 1 << 30 * 3, 3_000_000_000},
	}
	for _, c := range cases {
		var ni ngIface
		if c.res&0x80 != 0 {
			ni = ngIface{binary: true, shift: uint(c.res & 0x7f)}
		} else {
			ni = ngIface{mul: 1, div: 1}
			for k := int(c.res); k < 9; k++ {
				ni.mul *= 10
			}
			for k := int(c.res); k > 9; k-- {
				ni.div *= 10
			}
		}
		if got := ni.ngTime(c.ts); got != c.want {
			t.Errorf("resolution 0x%x: %d, want %d", c.res, got, c.want)
		}
	}
}

func TestExpandPaths(t *testing.T) {
	dir := t.TempDir()
	frames := ftFrames(2)
	os.WriteFile(filepath.Join(dir, "b-node.dump"), ftPcapBytes(t, frames), 0o644) // extension irrelevant
	os.WriteFile(filepath.Join(dir, "a-pod.pcapng"), ftPcapngBytes(t, frames), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(ftPcapBytes(t, frames))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "c.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "README.pcap"), []byte("not a capture"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "d.pcap"), ftPcapBytes(t, frames), 0o644)
	plain := filepath.Join(t.TempDir(), "whatever.txt")
	os.WriteFile(plain, []byte("x"), 0o644)

	got, err := ExpandPaths([]string{dir, plain})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a-pod.pcapng"), filepath.Join(dir, "b-node.dump"), filepath.Join(dir, "c.gz"), plain}
	if !slices.Equal(got, want) {
		t.Errorf("ExpandPaths = %q, want %q", got, want)
	}
	if _, err := ExpandPaths([]string{filepath.Join(dir, "missing.pcap")}); err == nil {
		t.Error("missing path: no error")
	}
	if _, err := ExpandPaths([]string{filepath.Join(dir, "sub", "..", "sub", "nothing-here")}); err == nil {
		t.Error("missing path in subdir: no error")
	}
}

// ftRepeatReader serves head once, then body forever: a file of unbounded
// length with identical records, so a benchmark measures steady state.
type ftRepeatReader struct {
	head, body []byte
	off        int
}

func (r *ftRepeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.head) > 0 {
			c := copy(p[n:], r.head)
			r.head = r.head[c:]
			n += c
			continue
		}
		c := copy(p[n:], r.body[r.off:])
		r.off = (r.off + c) % len(r.body)
		n += c
	}
	return n, nil
}

func ftBenchRead(b *testing.B, data []byte, headLen int) {
	src, err := NewReader("bench", &ftRepeatReader{head: data[:headLen], body: data[headLen:]}, -1)
	if err != nil {
		b.Fatal(err)
	}
	var bytesRead int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rf, err := src.Next()
		if err != nil {
			b.Fatal(err)
		}
		bytesRead += len(rf.Data)
	}
	b.SetBytes(int64(bytesRead / max(b.N, 1)))
}

// BenchmarkReadPcap: one op is one frame; steady state must not allocate.
func BenchmarkReadPcap(b *testing.B) {
	data := ftPcapBytes(b, ftFrames(50))
	ftBenchRead(b, data, 24)
}

func BenchmarkReadPcapng(b *testing.B) {
	frames := ftFrames(50)
	for i := range frames {
		frames[i].Dir = correlate.DirIn
	}
	var buf bytes.Buffer
	w, _ := NewNgWriter(&buf, []capture.Interface{{LinkType: capture.LinkTypeEthernet}}, []string{"p"})
	w.Flush()
	head := buf.Len()
	for _, rf := range frames {
		w.WriteFrame(0, rf)
	}
	w.Flush()
	ftBenchRead(b, buf.Bytes(), head)
}

func TestReadDoesNotAllocate(t *testing.T) {
	for name, data := range map[string][]byte{"pcap": ftPcapBytes(t, ftFrames(50)), "pcapng": ftPcapngBytes(t, ftFrames(50))} {
		head := 24
		if name == "pcapng" {
			ends, _ := ftBlockEnds(data, true)
			head = ends[1]                  // SHB + IDB
			data = data[:ends[len(ends)-2]] // drop the ISB
		}
		src, err := NewReader(name, &ftRepeatReader{head: data[:head], body: data[head:]}, -1)
		if err != nil {
			t.Fatal(err)
		}
		for range 100 { // warm up: buffer growth
			src.Next()
		}
		if n := testing.AllocsPerRun(2000, func() {
			if _, err := src.Next(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per frame", name, n)
		}
	}
}

// TestPcapngTsoffsetBeforeTsresol: an interface block's if_tsoffset counts
// whichever of it and if_tsresol comes first (pcapng leaves options in any
// order); the stamps read as tshark reads them.
func TestPcapngTsoffsetBeforeTsresol(t *testing.T) {
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		body = append(body, make([]byte, (4-len(body)%4)%4)...)
		b := le.AppendUint32(le.AppendUint32(nil, typ), uint32(len(body)+12))
		return le.AppendUint32(append(b, body...), uint32(len(body)+12))
	}
	opt := func(code uint16, val []byte) []byte {
		o := le.AppendUint16(le.AppendUint16(nil, code), uint16(len(val)))
		return append(append(o, val...), make([]byte, (4-len(val)%4)%4)...)
	}
	shb := block(ngBlockSHB, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, ngByteOrderMagic), 1), ^uint64(0)))
	tsoff := opt(14, le.AppendUint64(nil, 100)) // 100 s
	tsres := opt(9, []byte{9})                  // ns
	frame := make([]byte, 60)
	const ts = 1_700_000_000_123_456_789
	stamp := uint64(ts)
	epb := le.AppendUint32(nil, 0)
	epb = le.AppendUint32(le.AppendUint32(epb, uint32(stamp>>32)), uint32(stamp))
	epb = append(le.AppendUint32(le.AppendUint32(epb, 60), 60), frame...)
	files := map[string]int64{} // written out, and the stamp we read
	for name, opts := range map[string][]byte{"tsoffset first": append(append([]byte{}, tsoff...), tsres...),
		"tsresol first": append(append([]byte{}, tsres...), tsoff...)} {
		idb := append(le.AppendUint32(le.AppendUint16(le.AppendUint16(nil, uint16(capture.LinkTypeEthernet)), 0), 0), opts...)
		idb = append(idb, opt(0, nil)...)
		data := append(append(append([]byte{}, shb...), block(ngBlockIDB, idb)...), block(ngBlockEPB, epb)...)
		src, err := NewReader(name, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rf, err := src.Next()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := int64(ts + 100e9); rf.Time != want {
			t.Errorf("%s: stamp %d, want %d (the 100 s offset)", name, rf.Time, want)
		}
		path := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".pcapng")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[path] = rf.Time
	}
	ftRequireTshark(t)
	for path, got := range files {
		if rows := ftTsharkRows(t, path, "frame.time_epoch"); len(rows) != 1 || rows[0][0] != ftEpoch(got) {
			t.Errorf("%s: tshark reads %q, we %s", filepath.Base(path), rows, ftEpoch(got))
		}
	}
}
