package pipeline

import (
	"sync/atomic"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/capture/filter"
	"github.com/pathtrace/pathtrace/correlate"
)

// frameFilter applies --filter to frames as they are decoded: a frame
// matches when its outer view or, for a tunnelled frame, its inner one
// does (a user filtering on pod addresses still sees the VXLAN copies on a
// node NIC). A frame that does not match still proves its point was
// capturing, so it keeps its stamp and lengths but loses its key. One per
// decoding goroutine: the views are scratch.
type frameFilter struct {
	f            *filter.Filter
	outer, inner filter.Fields
	out          atomic.Int64 // frames that did not match (read by the pipeline when done)
}

// filteredOut is how many frames ff left out.
func (ff *frameFilter) filteredOut() int {
	if ff == nil {
		return 0
	}
	return int(ff.out.Load())
}

func newFrameFilter(f *filter.Filter) *frameFilter {
	if f.All() { // analyze and --passive compile the empty --filter too
		return nil
	}
	return &frameFilter{f: f}
}

// apply unkeys fr, just decoded from rf by dec, unless it matches.
func (ff *frameFilter) apply(dec *decode.Decoder, rf *capture.RawFrame, fr *correlate.Frame) {
	if ff == nil || fr.Key.Proto == correlate.ProtoNone {
		return
	}
	filter.Fill(&ff.outer, rf.LinkType, rf.Data, rf.WireLen)
	inner := (*filter.Fields)(nil)
	if off, link := dec.Tunnel(); off > 0 && off < len(rf.Data) {
		filter.Fill(&ff.inner, link, rf.Data[off:], rf.WireLen-off)
		inner = &ff.inner
	}
	if !ff.f.Match(&ff.outer, inner) {
		fr.Key = correlate.Key{}
		ff.out.Add(1)
	}
}
