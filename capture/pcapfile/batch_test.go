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

// TestNextBatchMatchesNext: NextBatch yields Next's frames, warnings and
// end, whatever the batch size, across read-buffer refills (frames larger
// than the buffer included) and at every cut of a small file.
func TestNextBatchMatchesNext(t *testing.T) {
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
