package pcapfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/pathtrace/pathtrace/capture"
)

// ftReadBatched reads every frame of data with Next (batch 0) or NextBatch
// (batch frames a call), copying each one's bytes, and how reading ended.
func ftReadBatched(t *testing.T, data []byte, batch int) ([]capture.RawFrame, []string, error) {
	t.Helper()
	src, err := NewReader("batch", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	var out []capture.RawFrame
	keep := func(rf capture.RawFrame) {
		rf.Data = append([]byte(nil), rf.Data...)
		out = append(out, rf)
	}
	rfs := make([]capture.RawFrame, batch)
	for {
		if batch == 0 {
			rf, err := src.Next()
			if err != nil {
				return out, src.Warnings(), err
			}
			keep(rf)
			continue
		}
		n, err := src.(interface {
			NextBatch([]capture.RawFrame) (int, error)
		}).NextBatch(rfs)
		if err != nil {
			if n != 0 {
				t.Fatalf("NextBatch returned %d frames with %v", n, err)
			}
			return out, src.Warnings(), err
		}
		if n == 0 {
			t.Fatal("NextBatch returned no frame and no error")
		}
		for _, rf := range rfs[:n] {
			keep(rf)
		}
	}
}

// ftBatchInputs are files that exercise the fast and slow paths of both
// readers: frames past the read buffer, every cut of a small file, broken
// records and blocks.
func ftBatchInputs(t *testing.T) map[string][]byte {
	frames := ftFrames(3000)
	for i := 0; i < len(frames); i += 500 { // copied past the read buffer
		frames[i].Data = append(frames[i].Data, make([]byte, readBufBytes+i)...)
		frames[i].WireLen = len(frames[i].Data)
	}
	big := ftPcapBytes(t, frames)
	inputs := map[string][]byte{"big": big, "big cut": big[:len(big)-7]}
	small := ftPcapBytes(t, ftFrames(5))
	for cut := 24; cut <= len(small); cut++ { // every record cut
		inputs[fmt.Sprintf("cut at %d", cut)] = small[:cut]
	}
	huge := bytes.Clone(small) // the second record claims too much
	binary.LittleEndian.PutUint32(huge[24+16+binary.LittleEndian.Uint32(huge[24+8:])+8:], MaxFrameBytes+1)
	inputs["oversized record"] = huge
	// pcapng: enhanced packet blocks read in place, and every block the
	// fast path leaves to the slow one (cut, wrong lengths, an unknown
	// interface, a captured length past its block, statistics at the end).
	bigNg := ftPcapngBytes(t, frames)
	inputs["pcapng big"], inputs["pcapng big cut"] = bigNg, bigNg[:len(bigNg)-7]
	smallNg := ftPcapngBytes(t, ftFrames(5))
	ends, isFrame := ftBlockEnds(smallNg, true)
	for cut := 1; cut <= len(smallNg); cut++ {
		inputs[fmt.Sprintf("pcapng cut at %d", cut)] = smallNg[:cut]
	}
	second := 0 // where the second frame's block starts
	for i := range ends {
		if isFrame[i] {
			second = ends[i]
			break
		}
	}
	for name, patch := range map[string]func(b []byte){
		"unknown interface": func(b []byte) { binary.LittleEndian.PutUint32(b[second+8:], 7) },
		"caplen past block": func(b []byte) { binary.LittleEndian.PutUint32(b[second+20:], 4000) },
		"trailer mismatch": func(b []byte) {
			blen := binary.LittleEndian.Uint32(b[second+4:])
			binary.LittleEndian.PutUint32(b[second+int(blen)-4:], blen+4)
		},
		"odd length": func(b []byte) { binary.LittleEndian.PutUint32(b[second+4:], 33) },
	} {
		b := bytes.Clone(smallNg)
		patch(b)
		inputs["pcapng "+name] = b
	}
	return inputs
}

// TestNextBatchMatchesNext: NextBatch yields Next's frames, warnings and
// end, whatever the batch size, across read-buffer refills (frames larger
// than the buffer included) and at every cut of a small file.
func TestNextBatchMatchesNext(t *testing.T) {
	inputs := ftBatchInputs(t)
	for name, data := range inputs {
		want, wantWarn, wantErr := ftReadBatched(t, data, 0)
		if wantErr != io.EOF && len(want) > 0 {
			t.Fatalf("%s: Next ended with %v", name, wantErr)
		}
		for _, batch := range []int{1, 3, 256} {
			got, warn, err := ftReadBatched(t, data, batch)
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(warn, wantWarn) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%s, batches of %d: %d frames, warnings %q, end %v; Next: %d frames, %q, %v",
					name, batch, len(got), warn, err, len(want), wantWarn, wantErr)
			}
		}
	}
}

// TestStampsMatchNext: Stamps yields the stamps and interfaces of Next's
// frames and ends as Next does (warnings included), whatever the count a
// call, on every input NextBatch is checked on, a µs pcap and SLL2 files
// (pcap and pcapng), whose records name their interfaces.
func TestStampsMatchNext(t *testing.T) {
	inputs := ftBatchInputs(t)
	small := ftPcapBytes(t, ftFrames(5))
	micro := bytes.Clone(small)
	binary.LittleEndian.PutUint32(micro, 0xa1b2c3d4)
	inputs["µs stamps"] = micro
	var sll2 []capture.RawFrame
	for i := range 700 {
		sll2 = append(sll2, capture.RawFrame{Data: append(ftSLL2Frame(uint32(2+i%3), 0), make([]byte, 40)...), Time: int64(1e18 + i*1000), WireLen: 60})
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, capture.LinkTypeSLL2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range sll2 {
		w.WriteFrame(rf)
	}
	w.Flush()
	inputs["sll2"] = buf.Bytes()
	var ngBuf bytes.Buffer
	nw, err := NewNgWriter(&ngBuf, []capture.Interface{{LinkType: capture.LinkTypeEthernet}, {LinkType: capture.LinkTypeSLL2}}, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	for i, rf := range sll2 {
		if i%4 == 0 {
			rf.Data = rf.Data[20:]
			nw.WriteFrame(0, rf)
			continue
		}
		nw.WriteFrame(1, rf)
	}
	nw.Flush()
	inputs["pcapng sll2"] = ngBuf.Bytes()
	for name, data := range inputs {
		want, wantWarn, wantErr := ftReadBatched(t, data, 0)
		for _, batch := range []int{1, 3, 256} {
			src, err := NewReader("batch", bytes.NewReader(data), int64(len(data)))
			if err != nil {
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Fatalf("%s: open: %v, Next's reading %v", name, err, wantErr)
				}
				continue
			}
			type stamped struct {
				t     int64
				iface int
			}
			var got []stamped
			ts, ifaces := make([]int64, batch), make([]int, batch)
			n := 0
			for {
				n, err = src.(interface {
					Stamps([]int64, []int) (int, error)
				}).Stamps(ts, ifaces)
				if err != nil {
					if n != 0 {
						t.Fatalf("%s: Stamps returned %d stamps with %v", name, n, err)
					}
					break
				}
				if n == 0 {
					t.Fatalf("%s: Stamps returned no stamp and no error", name)
				}
				for i := range n {
					got = append(got, stamped{ts[i], ifaces[i]})
				}
			}
			if len(got) != len(want) || fmt.Sprint(src.Warnings()) != fmt.Sprint(wantWarn) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("%s, %d a call: %d stamps, warnings %q, end %v; Next: %d frames, %q, %v",
					name, batch, len(got), src.Warnings(), err, len(want), wantWarn, wantErr)
			}
			for i := range want {
				if got[i] != (stamped{want[i].Time, want[i].Iface}) {
					t.Fatalf("%s, %d a call: frame %d is %+v, Next's stamp %d, interface %d", name, batch, i, got[i], want[i].Time, want[i].Iface)
				}
			}
			if !reflect.DeepEqual(src.Interfaces(), ftInterfacesAfterNext(t, data)) {
				t.Fatalf("%s: interfaces after Stamps %+v, after Next %+v", name, src.Interfaces(), ftInterfacesAfterNext(t, data))
			}
		}
	}
}

// ftInterfacesAfterNext is what Interfaces says once Next read all of data.
func ftInterfacesAfterNext(t *testing.T, data []byte) []capture.Interface {
	src, err := NewReader("batch", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := src.Next(); err != nil {
			return src.Interfaces()
		}
	}
}
