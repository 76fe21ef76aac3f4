package decode

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// sameBothWays decodes rf with the fast path allowed and with the general
// path only, and fails unless both say the same, field for field.
func sameBothWays(t testing.TB, fast, general *Decoder, rf *capture.RawFrame, what string) bool {
	t.Helper()
	// Start from different garbage: Decode must overwrite every field.
	a := correlate.Frame{Point: 3, SrcIP: addr(ip6A), HasPorts: true, Encap: correlate.Encap{Type: correlate.EncapIPIP}}
	b := correlate.Frame{Point: 3, DstIP: addr(ip4B), HasTTL: true, Key: correlate.Key{Proto: correlate.ProtoARP}}
	okA, okB := fast.Decode(rf, &a), general.Decode(rf, &b)
	offA, linkA := fast.Tunnel()
	offB, linkB := general.Tunnel()
	if okA != okB || a != b || offA != offB || linkA != linkB {
		t.Errorf("%s: fast path and general path differ\nfast:    %v %+v tunnel %d/%v\ngeneral: %v %+v tunnel %d/%v\ndata % x",
			what, okA, a, offA, linkA, okB, b, offB, linkB, rf.Data)
		return false
	}
	return true
}

// variants are rf as given, cut at every length, and with each of its
// first header bytes set to values that flip the fast path's decisions.
func variants(rf capture.RawFrame, each func(capture.RawFrame, string)) {
	each(rf, "as captured")
	for n := len(rf.Data) - 1; n >= 0; n-- {
		c := rf
		c.Data = rf.Data[:n]
		each(c, "cut")
	}
	for i := 0; i < min(len(rf.Data), 80); i++ {
		for _, v := range []byte{0, 1, 4, 5, 6, 8, 0x11, 0x20, 0x40, 0x45, 0x46, 0x50, 0x80, 0xff, rf.Data[i] + 1, rf.Data[i] - 1} {
			c := rf
			c.Data = append([]byte(nil), rf.Data...)
			c.Data[i] = v
			each(c, "byte changed")
		}
	}
	c := rf
	c.WireLen = len(rf.Data) + 1000 // cut by a snaplen
	each(c, "snaplen")
	c.WireLen = 0
	each(c, "no wire length")
}

// TestFastPathMatchesGeneral: for every frame of the golden captures, the
// public corpus and the decoder's own cases, and for variants of each, the
// fast path decodes exactly what the general path does (or declines).
func TestFastPathMatchesGeneral(t *testing.T) {
	fast, general := New(), New()
	general.general = true
	var frames []capture.RawFrame
	for _, rf := range benchFrames(t) {
		frames = append(frames, *rf)
	}
	frames = append(frames, readCaptures(t, testenv.Captures(t))...)
	if dir := os.Getenv("PATHTRACE_CAPTURES"); dir != "" {
		frames = append(frames, readCaptures(t, testenv.Corpus(t))...)
	}
	fails, fastOnes := 0, 0
	seen := map[string]bool{}
	for _, rf := range frames {
		// One of each shape: the captures repeat a few shapes many times.
		shape := string(rf.Data[:min(len(rf.Data), 54)]) + string(rune(rf.LinkType))
		if seen[shape] {
			continue
		}
		seen[shape] = true
		var f correlate.Frame
		if fast.Decode(&rf, &f) && fast.fastIPv4Took(&rf) {
			fastOnes++
		}
		variants(rf, func(c capture.RawFrame, what string) {
			if fails < 10 && !sameBothWays(t, fast, general, &c, what) {
				fails++
			}
		})
	}
	if fastOnes == 0 {
		t.Fatal("no frame took the fast path: the comparison proves nothing")
	}
	t.Logf("%d frame shapes (%d through the fast path), each with its variants", len(seen), fastOnes)
}

// fastIPv4Took reports whether rf is one the fast path decodes.
func (d *Decoder) fastIPv4Took(rf *capture.RawFrame) bool {
	g := New()
	var f correlate.Frame
	g.Decode(rf, &f) // the general path
	var ff correlate.Frame
	switch rf.LinkType {
	case capture.LinkTypeEthernet:
		return len(rf.Data) >= 14 && rf.Data[12] == 8 && rf.Data[13] == 0 && d.fastIPv4(rf.Data, 14, &ff, true)
	}
	return false
}

// readCaptures reads every capture file under dir (gzip too).
func readCaptures(t *testing.T, dir string) []capture.RawFrame {
	var frames []capture.RawFrame
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil
			}
			if b, err = io.ReadAll(zr); err != nil {
				return nil
			}
		}
		if !bytes.HasPrefix(b, []byte{0x0a, 0x0d, 0x0d, 0x0a}) && !isPcap(b) {
			return nil
		}
		tmp := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		frames = append(frames, readCaptureLenient(tmp)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

func isPcap(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	for _, m := range [][]byte{{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4}, {0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}} {
		if bytes.Equal(b[:4], m) {
			return true
		}
	}
	return false
}

// readCaptureLenient is readCapture for files the corpus holds broken on
// purpose: what reads is kept, a failure ends the file.
func readCaptureLenient(path string) (frames []capture.RawFrame) {
	ft := &lenientTB{}
	defer func() {
		recover()
		frames = ft.frames
	}()
	ft.frames = readCapture(ft, path)
	return ft.frames
}

// lenientTB turns readCapture's Fatalf into a panic the caller recovers.
type lenientTB struct {
	testing.TB
	frames []capture.RawFrame
}

func (l *lenientTB) Helper()               {}
func (l *lenientTB) Fatalf(string, ...any) { panic("stop") }
func (l *lenientTB) Fatal(...any)          { panic("stop") }

// FuzzFastPath: for any bytes under the link types the fast path serves,
// it decodes what the general path decodes.
func FuzzFastPath(f *testing.F) {
	for _, rf := range benchFrames(f) {
		f.Add(rf.Data, int(rf.LinkType), len(rf.Data))
	}
	fast, general := New(), New()
	general.general = true
	f.Fuzz(func(t *testing.T, b []byte, link, wire int) {
		for _, lt := range []capture.LinkType{capture.LinkType(link), capture.LinkTypeEthernet, capture.LinkTypeLinuxSLL, capture.LinkTypeSLL2, capture.LinkTypeRaw, capture.LinkTypeNull} {
			rf := &capture.RawFrame{Data: b, WireLen: wire, LinkType: lt, Num: 1, Time: 5}
			sameBothWays(t, fast, general, rf, lt.String())
		}
	})
}
