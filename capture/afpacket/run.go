package afpacket

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pathtrace/pathtrace/capture"
	"golang.org/x/net/bpf"
)

// Config configures Run.
type Config struct {
	Filter    []bpf.RawInstruction // nil captures everything
	RingBytes int                  // per socket; <= 0 means DefaultRingBytes
	// Opened, if set, is called as each point's socket is armed, on Run's
	// goroutine, before any of that point's frames is delivered: i is the
	// point, from the time since which it captures everything.
	Opened func(i int, from time.Time)
	// Armed is called once, after every socket is open with its filter
	// attached; start probing then. It gets the time from the start of
	// Run to all points armed. Points armed earlier deliver frames
	// already.
	Armed func(armTime time.Duration)
}

// PointStats is what one point captured.
type PointStats struct {
	Name    string
	From    time.Time // when its socket was armed: it captured everything since
	Frames  uint64    // frames delivered to out
	Packets uint64    // kernel: frames that passed the filter, drops included
	Drops   uint64    // kernel: frames lost because the ring was full
	Err     error     // why the point stopped early (interface deleted...), nil if it ran to the end
	// Until is when the point's capture ended: Stats.Stopped, or (Err
	// set) when it failed, or the stamp of the last frame delivered from a
	// ring whose drain was cut short. Frames after it were not captured.
	Until time.Time
}

// Stats is the outcome of Run.
type Stats struct {
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
	// drainCap bounds a drain that neither empties the ring nor reaches a
	// frame stamped after the stop (a clock step); the frames left are
	// reported (PointStats.Err), not silently lost.
	drainCap = 10 * time.Second
	// stampSlack: a point's stamps are not strictly in ring order (a bridge
	// reports a frame's ingress stamp), so the drain ends only at a frame
	// stamped this far past the stop.
	stampSlack = int64(5 * time.Millisecond)
)

// Sink receives one point's frames, on that point's own goroutine: the
// sinks of different points run concurrently.
type Sink interface {
	// Frame is called for every frame in capture order. rf.Data is the
	// ring's memory, valid only during the call: copy what you keep.
	Frame(rf *capture.RawFrame)
	// Idle is called when the ring is empty for now and once more when the
	// point stops: hand over whatever is batched.
	Idle()
}

// Run captures at every point until ctx is done. It opens the sockets one
// by one (each inside its namespace), starting each point's reader as soon
// as its socket is armed, and calls cfg.Armed once all are; if a point
// cannot be opened, or ctx is done before all are, it stops and closes the
// others and returns the error.
// A point's reader starts at once because arming the rest takes 70–200 ms
// beside a flood: a ring left unread that long is a third full before
// the capture has begun, and overflowed while the process warmed up.
// One goroutine per socket reads the ring and calls sinks[i] (Iface is 0,
// the point's only interface); nothing is copied or serialized here, so a
// busy point costs only what its sink does. A point that fails
// mid-capture (its interface deleted) stops with PointStats.Err set while
// the others go on. On cancel every ring is drained before its socket
// closes.
func Run(ctx context.Context, points []Point, cfg Config, sinks []Sink) (Stats, error) {
	start := time.Now()
	st := Stats{Points: make([]PointStats, len(points))}
	if len(sinks) != len(points) {
		return st, fmt.Errorf("arm live capture: %d sinks for %d points", len(sinks), len(points))
	}
	// The stop is when ctx is done, or arming failed; not when a reader
	// (in poll, or waiting for the spool) notices it.
	runCtx, abort := context.WithCancel(ctx)
	defer abort()
	stopSet := make(chan struct{})
	cancelStop := context.AfterFunc(runCtx, func() {
		st.Stopped = time.Now()
		close(stopSet)
	})
	stopped := func() time.Time {
		<-stopSet
		return st.Stopped
	}
	var wg sync.WaitGroup
	for i, p := range points {
		ps := &st.Points[i]
		ps.Name = p.Name
		err := ctx.Err() // done while arming: no point armed after the stop
		var s *Socket
		if err == nil {
			s, err = Open(p, cfg.Filter, cfg.RingBytes)
		}
		if err != nil {
			abort()
			wg.Wait()
			return Stats{Points: st.Points}, fmt.Errorf("arm live capture: %w", err)
		}
		ps.From = time.Now()
		if cfg.Opened != nil {
			cfg.Opened(i, ps.From)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps.Until, ps.Err = readPoint(runCtx, s, sinks[i], &ps.Frames, stopped)
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
	st.ArmTime = time.Since(start)
	if cfg.Armed != nil {
		cfg.Armed(st.ArmTime)
	}
	wg.Wait()
	if !cancelStop() {
		<-stopSet // ctx was done: Stopped is being set
	}
	return st, nil
}

// readPoint reads s until ctx is done, then drains what the ring holds from
// before the stop; or until s fails. It returns why the point stopped early
// (nil if it did not) and until when it captured.
func readPoint(ctx context.Context, s *Socket, sink Sink, frames *uint64, stopped func() time.Time) (until time.Time, err error) {
	var drainUntil, stopAt time.Time
	stop := int64(1<<63 - 1)
	var rf capture.RawFrame // one for the whole run: the sink gets its address
	var last int64
	for {
		rf, err = s.Next()
		// Checked after Next: a frame Next returned before the stop was
		// seen here was stamped before it.
		if drainUntil.IsZero() && ctx.Err() != nil {
			stopAt = stopped()
			stop = stopAt.UnixNano()
			drainUntil = stopAt.Add(drainGrace)
		}
		switch {
		case err == nil:
			if rf.Time <= stop {
				sink.Frame(&rf)
				*frames++
				last = max(last, rf.Time)
			}
			if !s.Ready() {
				sink.Idle()
			}
			if drainUntil.IsZero() {
				continue
			}
			if rf.Time > stop+stampSlack {
				return stopAt, nil // caught up with the stop
			}
			if time.Now().After(drainUntil.Add(drainCap)) {
				return time.Unix(0, last), fmt.Errorf("capture point %s: ring not drained %v after the stop: frames after %s left unread",
					s.point.Name, drainCap, time.Unix(0, last).UTC().Format(time.RFC3339Nano))
			}
		case errors.Is(err, capture.ErrTimeout):
			sink.Idle()
			// Done once the grace is over and the ring holds nothing
			// unread: no frames in a block the kernel's (late) retire
			// timer has not handed over yet, nor in one it handed over
			// since the poll timed out.
			if !drainUntil.IsZero() && time.Now().After(drainUntil) && !s.Pending() {
				return stopAt, nil
			}
			if !drainUntil.IsZero() && time.Now().After(drainUntil.Add(drainCap)) {
				return time.Unix(0, last), fmt.Errorf("capture point %s: the kernel did not hand over its last ring block %v after the stop: frames after %s left unread",
					s.point.Name, drainCap, time.Unix(0, last).UTC().Format(time.RFC3339Nano))
			}
		default:
			return time.Now(), err
		}
	}
}
