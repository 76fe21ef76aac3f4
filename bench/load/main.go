// Command load sends ICMP echo requests at a fixed rate from a network
// namespace, for bench/live.sh: a flood ping sends as fast as the CPU lets
// it, so its rate depends on what else runs (the capturer being measured);
// a paced sender offers every capturer the same load.
//
//	load -netns /run/netns/pod1 -dst 10.93.1.3 -rate 50000 -duration 5s -streams 2
//
// Each stream is one raw socket (its own echo id) on its own OS thread,
// sending rate/streams per second. It prints what it sent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/netns"
)

type config struct {
	netns    string
	dst      netip.Addr
	rate     float64
	duration time.Duration
	streams  int
	size     int
}

func main() {
	var cfg config
	var dst string
	flag.StringVar(&cfg.netns, "netns", "", "network namespace path to send from")
	flag.StringVar(&dst, "dst", "", "destination IP")
	flag.Float64Var(&cfg.rate, "rate", 10000, "echo requests per second, all streams together")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long to send")
	flag.IntVar(&cfg.streams, "streams", 1, "parallel senders (sockets, threads)")
	flag.IntVar(&cfg.size, "s", 56, "echo payload bytes (as ping -s)")
	flag.Parse()
	var err error
	if cfg.dst, err = netip.ParseAddr(dst); err != nil {
		fmt.Fprintf(os.Stderr, "load: -dst: %v\n", err)
		os.Exit(2)
	}
	if cfg.netns == "" || cfg.rate <= 0 || cfg.streams < 1 || cfg.size < 16 {
		fmt.Fprintln(os.Stderr, "load: need -netns, -rate > 0, -streams >= 1, -s >= 16")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	h, err := netns.Open(cfg.netns)
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	sent := make([]int, cfg.streams)
	errs := make([]error, cfg.streams)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.streams {
		// The payload is ping's size; its first bytes differ per stream so
		// no two streams' requests have the same identity.
		tag := make([]byte, cfg.size-10)
		copy(tag, fmt.Sprintf("ptload%02d", i))
		p, err := probe.New(h, cfg.dst, uint16(0x7000+i), tag)
		if err != nil {
			return err
		}
		defer p.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			sent[i], errs[i] = pace(ctx, p, cfg.rate/float64(cfg.streams), start)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for _, n := range sent {
		total += n
	}
	fmt.Printf("sent %d echo requests in %.3fs: %.0f/s (asked %.0f/s, %d streams)\n",
		total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), cfg.rate, cfg.streams)
	return errors.Join(errs...)
}

// pace sends at rate per second until ctx ends, catching up after a short
// stall (so the average holds) but never bursting more than 5 ms's worth;
// it returns how many it sent.
func pace(ctx context.Context, p *probe.Prober, rate float64, start time.Time) (int, error) {
	sent, next := 0, 0
	burst := max(1, int(rate/200))
	for ctx.Err() == nil {
		due := int(time.Since(start).Seconds() * rate)
		next = max(next, due-burst) // a longer stall is skipped, not flooded
		for ; next < due; next++ {
			if _, err := p.Send(uint16(next)); err != nil {
				if errors.Is(err, syscall.ENOBUFS) {
					continue
				}
				return sent, err
			}
			sent++
		}
		time.Sleep(100 * time.Microsecond)
	}
	return sent, nil
}
