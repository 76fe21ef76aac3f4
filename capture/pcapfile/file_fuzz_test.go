package pcapfile

import (
	"bytes"
	"io"
	"testing"
)

// FuzzOpenFile feeds arbitrary bytes to the readers: no panic, no frame
// larger than the cap, interface indices in range, and termination (every
// record consumes input, so frames can never outnumber the bytes). No
// wall-clock limit: the fuzzer's own hang detection covers a stuck reader,
// and a loaded machine must not fail it.
func FuzzOpenFile(f *testing.F) {
	frames := ftFrames(3)
	f.Add(ftPcapBytes(f, frames))
	f.Add(ftPcapngBytes(f, frames))
	for _, data := range ftHostileFiles() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := NewReader("fuzz", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		defer src.Close()
		n := 0
		for {
			rf, err := src.Next()
			if err != nil {
				if err != io.EOF && n > 0 {
					t.Fatalf("error after %d frames: %v", n, err)
				}
				break
			}
			n++
			if n > len(data) {
				t.Fatalf("%d frames from %d bytes: not consuming input", n, len(data))
			}
			if len(rf.Data) > maxBlockBytes || rf.Iface < 0 || rf.Iface >= len(src.Interfaces()) || rf.Num < n {
				t.Fatalf("frame %d: len %d iface %d of %d num %d", n, len(rf.Data), rf.Iface, len(src.Interfaces()), rf.Num)
			}
		}
	})
}
