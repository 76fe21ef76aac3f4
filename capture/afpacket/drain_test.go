package afpacket

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
)

// The drain after a stop, against a ring in memory: the test plays the
// kernel, filling and handing over blocks when the reader goes idle, and the
// socket's fd is a pipe that never becomes readable, so every poll times
// out. No root needed.

// fakeSocket is a Socket over a ring of nblocks small blocks in memory.
func fakeSocket(t *testing.T) *Socket {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	const nblocks, bsize = 4, 4096
	return &Socket{
		point: Point{Name: "fake"}, fd: p[0],
		ring: make([]byte, nblocks*bsize), nblocks: nblocks, bsize: bsize,
		iface: capture.Interface{LinkType: capture.LinkTypeEthernet},
	}
}

// fill writes frames stamped stamps into block b as the kernel does while
// the block is its to fill: frames and count, the status still
// TP_STATUS_KERNEL.
func fill(s *Socket, b int, stamps ...int64) {
	const first, mac, snap, step = 48, 80, 64, 144 // BLK_PLUS_PRIV(0), TPACKET_ALIGN'ed offsets
	base := b * s.bsize
	ne.PutUint32(s.ring[base+bdFirstPkt:], first)
	for i, ts := range stamps {
		h := s.ring[base+first+i*step:]
		next := uint32(step)
		if i == len(stamps)-1 {
			next = 0
		}
		ne.PutUint32(h[phNext:], next)
		ne.PutUint32(h[phSec:], uint32(ts/1e9))
		ne.PutUint32(h[phNsec:], uint32(ts%1e9))
		ne.PutUint32(h[phSnaplen:], snap)
		ne.PutUint32(h[phLen:], snap)
		ne.PutUint16(h[phMac:], mac)
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&s.ring[base+bdNumPkts])), uint32(len(stamps)))
}

// retire hands block b over, as the kernel's retire timer does.
func retire(s *Socket, b int) {
	atomic.StoreUint32(s.blockStatus(b), unix.TP_STATUS_USER|unix.TP_STATUS_BLK_TMO)
}

// kernelSink collects frames' stamps; its Idle, called when a poll timed
// out, runs the kernel's next move.
type kernelSink struct {
	stamps []int64
	idles  int
	idle   func(n int) // n: the Idle call, from 1
}

func (k *kernelSink) Frame(rf *capture.RawFrame) { k.stamps = append(k.stamps, rf.Time) }
func (k *kernelSink) Idle() {
	k.idles++
	if k.idle != nil {
		k.idle(k.idles)
	}
}

// TestDrainReadsBlockRetiredAfterPollTimeout: the drain reads every frame
// stamped before the stop, whenever in the drain the kernel hands the block
// holding them over — also right after a poll timed out, before the drain
// checks whether the kernel still holds frames (under load the retire
// timer is late and fires just then: the last block of several points was
// lost that way).
func TestDrainReadsBlockRetiredAfterPollTimeout(t *testing.T) {
	stop := time.Now().Add(-drainGrace) // the grace is over at the first poll timeout
	at := stop.UnixNano()
	want := []int64{at - 2e6, at - 1e6}
	for _, c := range []struct {
		name string
		// kernel is the kernel's move at the reader's n-th idle, past the grace.
		kernel func(s *Socket, n int)
	}{
		{"handed over after a poll timed out", func(s *Socket, n int) {
			if n == 1 {
				fill(s, 0, want...)
				retire(s, 0)
			}
		}},
		{"held past the grace, then handed over", func(s *Socket, n int) {
			switch n {
			case 1:
				fill(s, 0, want...)
			case 3:
				retire(s, 0)
			}
		}},
		{"the next block retired after the first was read", func(s *Socket, n int) {
			switch n {
			case 1:
				fill(s, 0, want[0])
				retire(s, 0)
				fill(s, 1, want[1])
			case 3: // 2: the ring went empty after block 0
				retire(s, 1)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := fakeSocket(t)
			k := &kernelSink{}
			k.idle = func(n int) { c.kernel(s, n) }
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var frames uint64
			until, err := readPoint(ctx, s, k, &frames, func() time.Time { return stop })
			if err != nil {
				t.Fatal(err)
			}
			if !until.Equal(stop) {
				t.Errorf("until %v, want the stop %v", until, stop)
			}
			if len(k.stamps) != len(want) || k.stamps[0] != want[0] || k.stamps[1] != want[1] || frames != uint64(len(want)) {
				t.Fatalf("drained frames stamped %v (%d counted), want %v", k.stamps, frames, want)
			}
		})
	}
}

// TestDrainEndsWhenRingEmpty: with nothing left in the ring the drain ends
// at the first poll timeout after the grace.
func TestDrainEndsWhenRingEmpty(t *testing.T) {
	s := fakeSocket(t)
	k := &kernelSink{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stop := time.Now()
	var frames uint64
	if _, err := readPoint(ctx, s, k, &frames, func() time.Time { return stop }); err != nil {
		t.Fatal(err)
	}
	// The grace (32 ms) is over when the first poll (50 ms) times out.
	if k.idles != 1 || frames != 0 {
		t.Errorf("drain ended after %d poll timeouts with %d frames, want 1 and 0", k.idles, frames)
	}
}
