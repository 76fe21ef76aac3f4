package pcapfile

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
)

// ftFrames builds n distinct Ethernet frames with odd sizes (padding
// paths) and nanosecond stamps that µs resolution would lose.
func ftFrames(n int) []capture.RawFrame {
	var out []capture.RawFrame
	base := int64(1_700_000_000_123_456_789)
	for i := range n {
		data := make([]byte, 60+i*7%50)
		copy(data[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(data[6:12], []byte{2, 0, 0, 0, 0, byte(i)})
		binary.BigEndian.PutUint16(data[12:14], 0x88b5) // local experimental ethertype
		for j := 14; j < len(data); j++ {
			data[j] = byte(i + j)
		}
		dir := correlate.LinkDir(i % 3)
		out = append(out, capture.RawFrame{Data: data, Time: base + int64(i)*1_000_003, WireLen: len(data) + i%2*10,
			LinkType: capture.LinkTypeEthernet, Dir: dir, Num: i + 1})
	}
	return out
}

func ftRequireTshark(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark not installed")
		}
		t.Skip("tshark not installed")
	}
}

func ftTsharkRows(t *testing.T, path string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", path, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

func ftReadAll(t *testing.T, src File) []capture.RawFrame {
	t.Helper()
	var out []capture.RawFrame
	for {
		rf, err := src.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		rf.Data = slices.Clone(rf.Data)
		out = append(out, rf)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	frames := ftFrames(25)
	path := filepath.Join(t.TempDir(), "pod1.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, capture.LinkTypeEthernet, 65535)
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
	f.Close()

	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := ftReadAll(t, src)
	if len(got) != len(frames) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(frames))
	}
	for i, rf := range got {
		w := frames[i]
		if rf.Time != w.Time || !bytes.Equal(rf.Data, w.Data) || rf.WireLen != w.WireLen || rf.Num != i+1 || rf.LinkType != capture.LinkTypeEthernet {
			t.Errorf("frame %d: got time %d len %d wire %d num %d, want time %d len %d wire %d",
				i+1, rf.Time, len(rf.Data), rf.WireLen, rf.Num, w.Time, len(w.Data), w.WireLen)
		}
	}
	if ifs := src.Interfaces(); len(ifs) != 1 || ifs[0].Snaplen != 65535 {
		t.Errorf("interfaces %+v", ifs)
	}
	if src.Format() != "pcap" || len(src.Warnings()) != 0 {
		t.Errorf("format %q warnings %q", src.Format(), src.Warnings())
	}

	ftRequireTshark(t)
	rows := ftTsharkRows(t, path, "frame.number", "frame.time_epoch", "frame.cap_len", "frame.len")
	if len(rows) != len(frames) {
		t.Fatalf("tshark read %d frames, wrote %d", len(rows), len(frames))
	}
	for i, r := range rows {
		if r[1] != ftEpoch(frames[i].Time) || r[2] != strconv.Itoa(len(frames[i].Data)) || r[3] != strconv.Itoa(frames[i].WireLen) {
			t.Errorf("tshark frame %d: %q, want time %s", i+1, r, ftEpoch(frames[i].Time))
		}
	}
}

func writePcapng(t *testing.T, path string, frames []capture.RawFrame) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ifaces := []capture.Interface{
		{LinkType: capture.LinkTypeEthernet, Snaplen: 262144, Description: "netns pod1, eth0"},
		{LinkType: capture.LinkTypeEthernet, Description: "host, vethabc"},
		{LinkType: capture.LinkTypeEthernet, Snaplen: 64, Description: "host, cni0"},
	}
	w, err := NewNgWriter(f, ifaces, []string{"pod1", "veth1", "cni0"})
	if err != nil {
		t.Fatal(err)
	}
	for i, rf := range frames {
		if err := w.WriteFrame(i%2, rf); err != nil {
			t.Fatal(err)
		}
	}
	w.SetDrops(1, 7)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNgWriterRoundTrip(t *testing.T) {
	frames := ftFrames(20)
	path := filepath.Join(t.TempDir(), "evidence.pcapng")
	writePcapng(t, path, frames)

	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ifs := src.Interfaces()
	wantNames := []string{"pod1", "veth1", "cni0"}
	if len(ifs) != 3 {
		t.Fatalf("interfaces %+v", ifs)
	}
	for i, n := range wantNames {
		if ifs[i].Name != n {
			t.Errorf("interface %d name %q, want %q", i, ifs[i].Name, n)
		}
	}
	if ifs[0].Description != "netns pod1, eth0" {
		t.Errorf("description %q", ifs[0].Description)
	}
	secs := src.Sections()
	if len(secs) != 1 || secs[0].UserAppl != "pathtrace" || !slices.Equal(secs[0].PathOrder, wantNames) {
		t.Errorf("sections %+v", secs)
	}
	got := ftReadAll(t, src)
	if len(got) != len(frames) {
		t.Fatalf("read %d, wrote %d", len(got), len(frames))
	}
	for i, rf := range got {
		w := frames[i]
		if rf.Time != w.Time || !bytes.Equal(rf.Data, w.Data) || rf.Dir != w.Dir || rf.Iface != i%2 || rf.Num != i+1 {
			t.Errorf("frame %d: time %d dir %d iface %d, want %d %d %d", i+1, rf.Time, rf.Dir, rf.Iface, w.Time, w.Dir, i%2)
		}
	}
	ifs = src.Interfaces() // the ISBs come last
	if !ifs[1].HasDrops || ifs[1].Drops != 7 || ifs[0].HasDrops {
		t.Errorf("drops: %+v", ifs)
	}

	ftRequireTshark(t)
	rows := ftTsharkRows(t, path, "frame.number", "frame.time_epoch", "frame.interface_name", "frame.cap_len", "frame.interface_description")
	if len(rows) != len(frames) {
		t.Fatalf("tshark read %d frames, wrote %d", len(rows), len(frames))
	}
	for i, r := range rows {
		if r[1] != ftEpoch(frames[i].Time) || r[2] != wantNames[i%2] || r[3] != strconv.Itoa(len(frames[i].Data)) {
			t.Errorf("tshark frame %d: %q, want time %s iface %s", i+1, r, ftEpoch(frames[i].Time), wantNames[i%2])
		}
	}
	if rows[0][4] != "netns pod1, eth0" {
		t.Errorf("tshark interface description %q", rows[0][4])
	}
}

func TestWritersDoNotAllocate(t *testing.T) {
	rf := ftFrames(1)[0]
	rf.Dir = correlate.DirOut
	pw, err := NewWriter(io.Discard, capture.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	ngw, err := NewNgWriter(io.Discard, []capture.Interface{{LinkType: capture.LinkTypeEthernet}}, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		pw.WriteFrame(rf)
		ngw.WriteFrame(0, rf)
	}); n != 0 {
		t.Errorf("%v allocations per frame", n)
	}
}
