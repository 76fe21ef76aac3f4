package kdrop

import (
	"encoding/binary"
	"strings"
	"testing"
)

func sampleRecord() []byte {
	b := make([]byte, recordSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[offTime:], 123456789)
	ne.PutUint64(b[offLocation:], 0xffffffff81000010)
	ne.PutUint32(b[offReason:], 6)
	ne.PutUint32(b[offNetns:], 4026531840)
	ne.PutUint32(b[offIfindex:], 3)
	ne.PutUint32(b[offSkbLen:], 84)
	ne.PutUint16(b[offProto:], 0x0800)
	ne.PutUint16(b[offCapLen:], 84)
	copy(b[offData:], []byte{0x45, 0, 0, 84})
	return b
}

func TestParseRecord(t *testing.T) {
	r, err := parseRecord(sampleRecord())
	if err != nil {
		t.Fatal(err)
	}
	if r.ktime != 123456789 || r.location != 0xffffffff81000010 || r.reason != 6 || r.netns != 4026531840 ||
		r.ifindex != 3 || r.skbLen != 84 || r.proto != 0x0800 || len(r.data) != 84 || r.data[0] != 0x45 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseRecord(sampleRecord()[:recordSize-1]); err == nil {
		t.Error("short record parsed")
	}
}

// The record layout in Go matches the C struct bpf2go saw.
func TestRecordLayout(t *testing.T) {
	if recordSize != offData+192 {
		t.Errorf("record size %d, want %d", recordSize, offData+192)
	}
}

// FuzzParseRecord: ring buffer records cross from the kernel; a bad one
// must be refused, never read past its end.
func FuzzParseRecord(f *testing.F) {
	f.Add(sampleRecord())
	f.Add(make([]byte, recordSize))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if len(r.data) > recordSize-offData || (r.inner != 0 && int(r.inner) >= len(r.data)) {
			t.Errorf("accepted %d bytes, inner %d", len(r.data), r.inner)
		}
	})
}

func TestParseSymbols(t *testing.T) {
	text := `ffffffff81000000 T _stext
ffffffff81a00000 T nft_do_chain
ffffffff81a00000 t nft_do_chain_alias
ffffffff81a00800 t helper
ffffffffc0001000 t vxlan_rcv	[vxlan]
ffffffff82000000 D some_data
`
	s, err := ParseSymbols(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81a0046f: "nft_do_chain+0x46f",
		0xffffffff81a00000: "nft_do_chain+0x0",
		0xffffffff81a00801: "helper+0x1",
		0xffffffffc0001010: "vxlan_rcv+0x10 [vxlan]",
		0x1000:             "",
	} {
		if got := s.Lookup(addr); got != want {
			t.Errorf("Lookup(%#x) = %q, want %q", addr, got, want)
		}
	}
	if _, err := ParseSymbols(strings.NewReader("0000000000000000 T _stext\n0000000000000000 T nft_do_chain\n")); err != ErrSymbolsHidden {
		t.Errorf("zeroed kallsyms: %v, want ErrSymbolsHidden", err)
	}
}

// FuzzParseSymbols: kallsyms text never panics the parser or Lookup.
func FuzzParseSymbols(f *testing.F) {
	f.Add("ffffffff81000000 T _stext\nffffffff81a00000 T nft_do_chain\n", uint64(0xffffffff81a00010))
	f.Add("zz T x\n1 t\n", uint64(1))
	f.Fuzz(func(t *testing.T, text string, addr uint64) {
		s, err := ParseSymbols(strings.NewReader(text))
		if err == nil {
			_ = s.Lookup(addr)
		}
	})
}
