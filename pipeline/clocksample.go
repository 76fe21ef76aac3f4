package pipeline

import (
	"slices"

	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/pcapfile"
	"github.com/pathtrace/pathtrace/correlate"
)

// clockSample is the clock pre-pass's input: the first frames of every file,
// kept as raw records (a third of their decoded size, so the pre-pass does
// not set the analysis's peak memory) and decoded as they are fed.
type clockSample struct {
	data []byte
	recs []rawRec
}

// clockSample reads the first perFile frames of every file, with the point
// each belongs to in the bundle's current order.
func (b *Bundle) clockSample(perFile int) (*clockSample, error) {
	s := &clockSample{recs: make([]rawRec, 0, perFile*len(b.files))}
	dec := decode.New()
	var f correlate.Frame
	for fi := range b.files {
		src, err := pcapfile.Open(b.files[fi].path)
		if err != nil {
			return nil, err
		}
		m := b.ifaceMap(fi)
		for n := 0; n < perFile; n++ {
			rf, err := src.Next()
			if err != nil {
				break
			}
			// Only frames with a key: decoded again when fed, which costs
			// less than holding the decoded frame.
			if rf.Iface >= len(m) || m[rf.Iface] < 0 || !dec.Decode(&rf, &f) {
				continue
			}
			s.recs = append(s.recs, rawRec{t: rf.Time, stamp: rf.Time, num: rf.Num, wire: rf.WireLen,
				off: int32(len(s.data)), n: int32(len(rf.Data)), point: int32(m[rf.Iface]), link: rf.LinkType, dir: rf.Dir})
			s.data = append(s.data, rf.Data...)
		}
		src.Close()
	}
	return s, nil
}

// each feeds fn the sample's frames in stamp order, equal stamps in
// reading order (file by file); the frame is reused between calls.
func (s *clockSample) each(fn func(*correlate.Frame)) {
	type at struct {
		t int64
		i int32
	}
	order := make([]at, len(s.recs))
	for i := range s.recs {
		order[i] = at{s.recs[i].t, int32(i)}
	}
	// The comparison (and so the order, even for stamps so far apart that
	// the difference overflows) is the one the pre-pass always used.
	slices.SortStableFunc(order, func(a, b at) int { return int(max(-1, min(1, a.t-b.t))) })
	b := rawBatch{data: s.data, recs: s.recs}
	dec := decode.New()
	var f correlate.Frame
	for _, o := range order {
		rf, r := b.frame(int(o.i))
		if !dec.Decode(&rf, &f) {
			continue
		}
		f.Point = int(r.point)
		fn(&f)
	}
}
