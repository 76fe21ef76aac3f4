package pipeline

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// TestPackedRoundTrip: every frame of the golden captures and the public
// corpus, as decoded, cut at every length and with odd values set, either
// packs and unpacks to itself field for field or is refused.
func TestPackedRoundTrip(t *testing.T) {
	dirs := []string{testenv.Captures(t)}
	if os.Getenv("PATHTRACE_CAPTURES") != "" {
		dirs = append(dirs, testenv.Corpus(t))
	}
	dec := decode.New()
	check := func(f *correlate.Frame, what string) bool {
		var p packed
		if !pack(f, &p) {
			return false
		}
		p.t = f.Time
		// Into a frame left over from another: unpack sets every field.
		g := correlate.Frame{Key: correlate.Key{MAC: correlate.MAC{9}, Addr1: netip.MustParseAddr("fd00::9"), Addr2: netip.MustParseAddr("fd00::8")},
			SrcIP: netip.MustParseAddr("fd00::1"), DstIP: netip.MustParseAddr("fd00::2"), HasPorts: true,
			Encap: correlate.Encap{Type: correlate.EncapVXLAN, VNI: 7}}
		unpack(&p, &g)
		if g != *f {
			t.Fatalf("%s: unpacked\n%+v\nwant\n%+v", what, g, *f)
		}
		return true
	}
	packedN, refused := 0, 0
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			src, err := pcapfile.Open(path)
			if err != nil {
				return nil
			}
			defer src.Close()
			for {
				rf, err := src.Next()
				if errors.Is(err, io.EOF) || err != nil {
					return nil
				}
				for n := len(rf.Data); n >= 0; n -= max(1, len(rf.Data)/7) {
					c := rf
					c.Data = rf.Data[:n]
					var f correlate.Frame
					dec.DecodeAny(&c, &f)
					f.Point, f.Time = 3, f.Stamp-12345
					if check(&f, path) {
						packedN++
					} else {
						refused++
					}
				}
			}
		})
	}
	if packedN == 0 || refused == 0 {
		t.Fatalf("%d frames packed, %d refused: both kinds expected", packedN, refused)
	}
	// Values at the edges of what packed holds.
	odd := correlate.Frame{Point: 1<<31 - 1, Time: -1 << 63, Stamp: 1<<63 - 1, Num: -7, WireLen: 1<<32 - 1,
		SrcIP: netip.MustParseAddr("255.255.255.255"), DF: true, Fragment: true, HasIPID: true, IPID: 65535,
		Key: correlate.Key{Proto: correlate.ProtoIP, Kind: 255, Seq: 1<<32 - 1, Hash: 1<<64 - 1}}
	if !check(&odd, "odd") {
		t.Fatal("odd frame refused")
	}
	for _, f := range []correlate.Frame{
		{SrcIP: netip.MustParseAddr("::ffff:10.0.0.1")},
		{DstIP: netip.MustParseAddr("fd00::1")},
		{WireLen: 1 << 32},
		{IPLen: -1},
		{Point: 1 << 31},
		{Key: correlate.Key{Addr1: netip.MustParseAddr("10.0.0.1")}},
		{Key: correlate.Key{MAC: correlate.MAC{1}}},
		{Encap: correlate.Encap{Type: correlate.EncapVXLAN}},
	} {
		if check(&f, "must refuse") {
			t.Errorf("packed %+v, which it cannot hold", f)
		}
	}
	t.Logf("%d frames packed, %d refused", packedN, refused)
}

// BenchmarkUnpack: the live correlator unpacks every spooled frame.
func BenchmarkUnpack(b *testing.B) {
	f := correlate.Frame{Point: 2, Time: 1e18, Stamp: 1e18, Num: 12345,
		Key:   correlate.Key{Proto: correlate.ProtoICMP, Kind: 8, Seq: 7, Hash: 0xabcdef, Len: 64},
		SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), IPLen: 84, WireLen: 98, CapLen: 98,
		SrcMAC: correlate.MAC{1, 2, 3, 4, 5, 6}, DstMAC: correlate.MAC{6, 5, 4, 3, 2, 1}, HasSrcMAC: true, HasDstMAC: true,
		TTL: 64, HasTTL: true, EchoID: 99, HasEchoID: true, IPID: 5, HasIPID: true, DF: true}
	var p packed
	if !pack(&f, &p) {
		b.Fatal("does not pack")
	}
	p.t = f.Time
	out := make([]correlate.Frame, 256)
	for b.Loop() {
		for i := range out {
			unpack(&p, &out[i])
		}
	}
}
