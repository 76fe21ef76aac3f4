package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/net/bpf"
)

// LiveConfig configures RunLive.
type LiveConfig struct {
	Filter    []bpf.RawInstruction // nil captures everything
	RingBytes int                  // per socket; <= 0 means DefaultRingBytes
	// Armed is called once, after every socket is open with its filter
	// attached and before any frame is delivered; start probing then. It
	// gets the time from the start of RunLive to all points armed.
	Armed func(armTime time.Duration)
}

// PointStats is what one point captured.
type PointStats struct {
	Name    string
	Frames  uint64 // frames delivered to out
	Packets uint64 // kernel: frames that passed the filter, drops included
	Drops   uint64 // kernel: frames lost because the ring was full
	Err     error  // why the point stopped early (interface deleted...), nil if it ran to the end
}

// LiveStats is the outcome of RunLive.
type LiveStats struct {
	ArmTime time.Duration
	// Stopped is when the capture was told to stop (ctx done); no frame
	// stamped later is delivered. Zero if every point failed before.
	Stopped time.Time
	Points  []PointStats
}

const (
	// drainGrace covers the kernel's block retire timeout: frames captured
	// just before the stop sit in a partly filled block until then.
	drainGrace = 4 * ringBlockTimeout * time.Millisecond
	// drainCap bounds a drain that never finds the ring empty.
	drainCap = time.Second
	// stampSlack: a point's stamps are not strictly in ring order (a bridge
	// reports a frame's ingress stamp), so the drain ends only at a frame
	// stamped this far past the stop.
	stampSlack = int64(5 * time.Millisecond)
)

// LiveSink receives one point's frames, on that point's own goroutine: the
// sinks of different points run concurrently.
type LiveSink interface {
	// Frame is called for every frame in capture order. rf.Data is the
	// ring's memory, valid only during the call: copy what you keep.
	Frame(rf *RawFrame)
	// Idle is called when the ring is empty for now and once more when the
	// point stops: hand over whatever is batched.
	Idle()
}

// RunLive captures at every point until ctx is done. It opens all sockets
// first (each inside its namespace) and calls cfg.Armed; if any point cannot
// be opened, it closes the others and returns the error. Then one goroutine
// per socket reads the ring and calls sinks[i] (Iface is 0, the point's only
// interface); nothing is copied or serialized here, so a busy point costs
// only what its sink does. A point that fails mid-capture (its interface
// deleted) stops with PointStats.Err set while the others go on. On cancel
// every ring is drained before its socket closes.
func RunLive(ctx context.Context, points []LivePoint, cfg LiveConfig, sinks []LiveSink) (LiveStats, error) {
	start := time.Now()
	st := LiveStats{Points: make([]PointStats, len(points))}
	if len(sinks) != len(points) {
		return st, fmt.Errorf("arm live capture: %d sinks for %d points", len(sinks), len(points))
	}
	srcs := make([]*LiveSource, 0, len(points))
	for i, p := range points {
		st.Points[i].Name = p.Name
		s, err := OpenLive(p, cfg.Filter, cfg.RingBytes)
		if err != nil {
			for _, o := range srcs {
				o.Close()
			}
			return st, fmt.Errorf("arm live capture: %w", err)
		}
		srcs = append(srcs, s)
	}
	st.ArmTime = time.Since(start)
	if cfg.Armed != nil {
		cfg.Armed(st.ArmTime)
	}

	// The first reader to see the stop fixes its time for all.
	var stopOnce sync.Once
	stopped := func() time.Time {
		stopOnce.Do(func() { st.Stopped = time.Now() })
		return st.Stopped
	}
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps := &st.Points[i]
			ps.Err = readLive(ctx, s, sinks[i], &ps.Frames, stopped)
			sinks[i].Idle()
			pk, dr, err := s.Stats()
			if err != nil && ps.Err == nil {
				ps.Err = err
			}
			ps.Packets, ps.Drops = pk, dr
			if err := s.Close(); err != nil && ps.Err == nil {
				ps.Err = err
			}
		}()
	}
	wg.Wait()
	return st, nil
}

// readLive reads s until ctx is done, then drains what the ring holds from
// before the stop; or until s fails.
func readLive(ctx context.Context, s *LiveSource, sink LiveSink, frames *uint64, stopped func() time.Time) error {
	var drainUntil time.Time
	stop := int64(1<<63 - 1)
	var rf RawFrame // one for the whole run: the sink gets its address
	for {
		if drainUntil.IsZero() && ctx.Err() != nil {
			at := stopped()
			stop = at.UnixNano()
			drainUntil = at.Add(drainGrace)
		}
		var err error
		rf, err = s.Next()
		switch {
		case err == nil:
			if rf.Time <= stop {
				sink.Frame(&rf)
				*frames++
			}
			if !s.Ready() {
				sink.Idle()
			}
			// Caught up with the stop; under a flood whose frames fall
			// behind the stop for long, give up after drainCap.
			if !drainUntil.IsZero() && (rf.Time > stop+stampSlack || time.Now().After(drainUntil.Add(drainCap))) {
				return nil
			}
		case errors.Is(err, ErrTimeout):
			sink.Idle()
			if !drainUntil.IsZero() && time.Now().After(drainUntil) {
				return nil
			}
		default:
			return err
		}
	}
}
