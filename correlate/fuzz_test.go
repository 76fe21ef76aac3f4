package correlate

import (
	"net/netip"
	"reflect"
	"testing"
)

// FuzzCorrelate feeds frames built from arbitrary bytes: few distinct keys,
// points, stamps close together and out of order, so duplicates,
// reflections, wraps and inversions all occur. Invariants: no panic, every
// keyed frame lands in exactly one trace (hops add up), traces are emitted
// in number order, a point appears once per trace unless reflected.
func FuzzCorrelate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{1, 0, 0, 1, 1, 5, 1, 2, 10, 1, 1, 12, 1, 0, 14, 2, 4, 30, 2, 3, 31})
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte) {
	{
		const npoints = 5
		c := cfgFor("a", "b", "c", "d", "e")
		c.Window = 50e3
		var frames []Frame
		ts := int64(1e18)
		for i := 0; i+3 <= len(data) && len(frames) < 400; i += 3 {
			kind, point, dt := data[i], int(data[i+1]%npoints), int64(int8(data[i+2]))
			ts += dt * 1000
			fr := Frame{Point: point, Time: ts, Num: i/3 + 1, WireLen: 60, CapLen: 60, HasSrcMAC: true, HasDstMAC: true}
			fr.Dir = LinkDir(kind >> 6 % 3)
			switch kind % 4 {
			case 0:
				fr.Key = Key{Proto: ProtoICMP, Kind: 8, Seq: uint32(kind>>2) % 4}
				fr.SrcIP, fr.DstIP = pod1IP, pod2IP
				fr.DstMAC = pod2MAC
			case 1:
				fr.Key = Key{Proto: ProtoICMP, Kind: 0, Seq: uint32(kind>>2) % 4}
				fr.SrcIP, fr.DstIP = pod2IP, pod1IP
				fr.DstMAC = pod1MAC
			case 2:
				fr.Key = Key{Proto: ProtoARP, Kind: 1 + kind>>2%2, Addr1: pod1IP, Addr2: netip.AddrFrom4([4]byte{10, 0, 0, kind >> 3})}
				fr.DstMAC = bcast
			case 3:
				fr.TTL, fr.HasTTL = kind, true
			}
			frames = append(frames, fr)
		}
		keyed := 0
		for _, fr := range frames {
			if fr.Key.Proto != ProtoNone {
				keyed++
			}
		}
		hops, last := 0, 0
		e, err := New(c, func(tr *Trace) {
			if tr.N <= last {
				t.Fatalf("trace %d emitted after %d", tr.N, last)
			}
			last = tr.N
			hops += len(tr.Hops)
			if tr.Hops[0].DeltaNs != 0 {
				t.Fatalf("trace %d: first hop delta %d", tr.N, tr.Hops[0].DeltaNs)
			}
			seen := map[string]bool{}
			for _, h := range tr.Hops {
				if !h.Reflection && seen[h.Point] {
					t.Fatalf("trace %d crosses %s twice without a reflection flag", tr.N, h.Point)
				}
				seen[h.Point] = true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range frames {
			e.Add(&frames[i])
		}
		r := e.Finish()
		if hops != keyed {
			t.Fatalf("%d keyed frames but %d hops in traces", keyed, hops)
		}
		if r.Summary.Frames != len(frames) {
			t.Fatalf("summary frames %d, fed %d", r.Summary.Frames, len(frames))
		}
		sameAsync(t, c, frames)
	}
}

// sameAsync: the engine with its traces built on the builder goroutine
// (Config.Async), or by another goroutine helping and the correlator
// (Config.Helped), emits the same traces, in the same order, and the same
// result as without.
func sameAsync(t *testing.T, c Config, frames []Frame) {
	t.Helper()
	run := func(async, helped bool) ([]Trace, *Result) {
		var got []Trace
		c.Async, c.Helped = async, helped
		e, err := New(c, func(tr *Trace) { got = append(got, tr.Clone()) })
		if err != nil {
			t.Fatal(err)
		}
		stop, helping := make(chan struct{}), make(chan struct{})
		if h := e.Helper(); h != nil {
			// A merge goroutine's part: build whatever is queued.
			go func() {
				defer close(helping)
				for {
					if h.Help() {
						continue
					}
					select {
					case <-stop:
						return
					case <-h.Ready():
					}
				}
			}()
		} else {
			close(helping)
		}
		for i := range frames {
			f := frames[i]
			e.Add(&f)
		}
		r := e.Finish()
		close(stop)
		<-helping
		return got, r
	}
	st, sr := run(false, false)
	for _, mode := range []struct {
		name   string
		helped bool
	}{{"async", false}, {"helped", true}} {
		at, ar := run(true, mode.helped)
		if !reflect.DeepEqual(st, at) {
			for i := range min(len(st), len(at)) {
				if !reflect.DeepEqual(st[i], at[i]) {
					t.Fatalf("%s trace %d differs:\nsync  %+v\n%s %+v", mode.name, i, st[i], mode.name, at[i])
				}
			}
			t.Fatalf("%s: %d traces, sync %d", mode.name, len(at), len(st))
		}
		if !reflect.DeepEqual(sr, ar) {
			t.Fatalf("%s result differs:\nsync  %+v\n%s %+v", mode.name, sr, mode.name, ar)
		}
	}
}
