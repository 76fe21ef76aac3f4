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
	Points  []PointStats
}

// drainGrace covers the kernel's block retire timeout: frames captured just
// before cancel sit in a partly filled block until then.
const (
	drainGrace = 4 * ringBlockTimeout * time.Millisecond
	drainCap   = time.Second
)

// RunLive captures at every point until ctx is done. It opens all sockets
// first (each inside its namespace) and calls cfg.Armed; if any point cannot
// be opened, it closes the others and returns the error. Then one goroutine
// per socket reads frames and calls out, serialized, with a private copy of
// each frame (Iface is 0, the point's only interface). A point that fails
// mid-capture (its interface deleted) stops with PointStats.Err set while the
// others go on. On cancel every ring is drained before its socket closes.
func RunLive(ctx context.Context, points []LivePoint, cfg LiveConfig, out func(point int, rf RawFrame)) (LiveStats, error) {
	start := time.Now()
	st := LiveStats{Points: make([]PointStats, len(points))}
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

	var outMu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps := &st.Points[i]
			ps.Err = readLive(ctx, s, func(rf RawFrame) {
				rf.Data = append([]byte(nil), rf.Data...)
				ps.Frames++
				outMu.Lock()
				out(i, rf)
				outMu.Unlock()
			})
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

// readLive reads s until ctx is done (then drains the ring) or s fails.
func readLive(ctx context.Context, s *LiveSource, deliver func(RawFrame)) error {
	var drainUntil time.Time
	for {
		if drainUntil.IsZero() && ctx.Err() != nil {
			drainUntil = time.Now().Add(drainGrace)
		}
		rf, err := s.Next()
		switch {
		case err == nil:
			deliver(rf)
			// Under a steady flood the ring is never empty: cap the drain.
			if !drainUntil.IsZero() && time.Now().After(drainUntil.Add(drainCap)) {
				return nil
			}
		case errors.Is(err, ErrTimeout):
			if !drainUntil.IsZero() && time.Now().After(drainUntil) {
				return nil
			}
		default:
			return err
		}
	}
}
