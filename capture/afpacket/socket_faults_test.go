package afpacket

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestLiveInterfaceDeleted(t *testing.T) {
	testenv.RequireRoot(t)
	name, h := newNetns(t, "del")
	for _, l := range []string{"ptd0", "ptd1"} {
		sh(t, "ip", "-n", name, "link", "add", l, "type", "veth", "peer", "name", l+"p")
		sh(t, "ip", "-n", name, "link", "set", l, "up")
		sh(t, "ip", "-n", name, "link", "set", l+"p", "up")
	}
	points := []Point{
		{Name: "gone", Netns: h, Ifname: "ptd0"},
		{Name: "stays", Netns: h, Ifname: "ptd1"},
	}
	baseline := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	armed := make(chan struct{})
	done := make(chan Stats, 1)
	go func() {
		st, err := Run(ctx, points, Config{Armed: func(time.Duration) { close(armed) }}, funcSinks(len(points), func(int, capture.RawFrame) {}))
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	<-armed
	deleted := time.Now()
	sh(t, "ip", "-n", name, "link", "del", "ptd0")
	time.Sleep(200 * time.Millisecond)
	cancelled := time.Now()
	cancel()
	var st Stats
	select {
	case st = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run hung after an interface was deleted")
	}
	gone, stays := st.Points[0].Err, st.Points[1].Err
	t.Logf("deleted point error: %v", gone)
	if gone == nil || !errors.Is(gone, unix.ENETDOWN) || !strings.Contains(gone.Error(), "gone") {
		t.Errorf("deleted interface: err %v, want ENETDOWN naming the point", gone)
	}
	if stays != nil {
		t.Errorf("other point failed too: %v", stays)
	}
	// The failed point captured until it failed, the other until the stop.
	if u := st.Points[0].Until; u.Before(deleted) || !u.Before(cancelled) {
		t.Errorf("deleted point captured until %v, want between the deletion %v and the stop %v", u, deleted, cancelled)
	}
	if u := st.Points[1].Until; !u.Equal(st.Stopped) || u.Before(cancelled) {
		t.Errorf("other point captured until %v, want the stop %v", u, st.Stopped)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseline {
		t.Errorf("%d goroutines after Run, %d before", g, baseline)
	}
}

// TestLiveFilterIPv6 runs the IPv6 filter in the kernel: echo and the
// neighbour discovery before it pass, IPv4 probes between the same pods do
// not.
func TestLiveFilterIPv6(t *testing.T) {
	testenv.RequireRoot(t)
	tp := newTopo(t)
	filter, err := Filter(tp.ip1v6, tp.ip2v6)
	if err != nil {
		t.Fatal(err)
	}
	points := []Point{tp.points[0], tp.points[2], tp.points[4]}
	var frames [][]byte
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	armed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, points, Config{Filter: filter, Armed: func(time.Duration) { close(armed) }},
			funcSinks(len(points), func(i int, rf capture.RawFrame) { frames = append(frames, rf.Data) }))
		done <- err
	}()
	select {
	case <-armed:
	case err := <-done:
		t.Fatal(err)
	}
	tag := []byte("ptlive-v6")
	for _, dst := range []netip.Addr{tp.ip2v6, tp.ip2} {
		pr, err := probe.New(tp.hPod1, dst, 7, tag)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint16(0); seq < 3; seq++ {
			if _, err := pr.Send(seq); err != nil {
				t.Fatal(err)
			}
			if _, err := pr.Recv(time.Now().Add(2 * time.Second)); err != nil {
				t.Fatalf("probe to %v: %v", dst, err)
			}
		}
		pr.Close()
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var echo, nd int
	for _, data := range frames {
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
		ic, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok {
			t.Errorf("IPv6 filter let through %v", pkt)
			continue
		}
		switch ic.TypeCode.Type() {
		case 128, 129:
			echo++
		case 135, 136:
			nd++
		}
	}
	t.Logf("IPv6 filter in the kernel: %d echo, %d ND frames of %d", echo, nd, len(frames))
	if echo != 3*2*len(points) || nd == 0 {
		t.Errorf("got %d echo frames (want %d) and %d ND frames (want > 0)", echo, 3*2*len(points), nd)
	}
}

func TestOpenLiveMissingInterface(t *testing.T) {
	testenv.RequireRoot(t)
	_, h := newNetns(t, "missing")
	_, err := Open(Point{Name: "pod9", Netns: h, Ifname: "nope0"}, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "pod9") || !strings.Contains(err.Error(), "nope0") {
		t.Fatalf("err = %v, want an error naming the point and interface", err)
	}
}

// TestLiveStopCutsAtStop: under steady traffic, a stopped capture delivers
// what every point saw up to the stop and nothing stamped after it, so a
// report's frames match its capture window.
func TestLiveStopCutsAtStop(t *testing.T) {
	testenv.RequireRoot(t)
	tp := newTopo(t)
	filter, err := Filter(tp.ip1, tp.ip2)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := probe.New(tp.hPod1, tp.ip2, 0x4545, []byte("ptstop"))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	sending, stopSending := context.WithCancel(context.Background())
	defer stopSending()
	sent := make(chan struct{})
	go func() { // ~5k echo requests/s until told to stop
		defer close(sent)
		for seq := uint16(0); sending.Err() == nil; seq++ {
			pr.Send(seq)
			time.Sleep(200 * time.Microsecond)
		}
	}()

	var mu sync.Mutex
	last := make([]int64, len(tp.points))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	armed := make(chan struct{})
	done := make(chan Stats, 1)
	go func() {
		st, err := Run(ctx, tp.points, Config{Filter: filter, Armed: func(time.Duration) { close(armed) }},
			funcSinks(len(tp.points), func(i int, rf capture.RawFrame) {
				mu.Lock()
				last[i] = max(last[i], rf.Time)
				mu.Unlock()
			}))
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	<-armed
	time.Sleep(300 * time.Millisecond)
	before := time.Now()
	cancel()
	st := <-done
	after := time.Now()
	stopSending()
	<-sent
	if st.Stopped.Before(before) || st.Stopped.After(after) {
		t.Fatalf("Stopped %v not between cancel (%v) and return (%v)", st.Stopped, before, after)
	}
	stop := st.Stopped.UnixNano()
	for i, p := range st.Points {
		if p.Frames == 0 {
			t.Errorf("%s: no frames", p.Name)
			continue
		}
		if last[i] > stop {
			t.Errorf("%s: frame stamped %v after the stop", p.Name, time.Duration(last[i]-stop))
		}
		// Traffic ran up to the stop (a request every 0.2 ms): a point's
		// newest frame is recent, unless the sender went unscheduled
		// for a while on a loaded machine.
		if gap := time.Duration(stop - last[i]); gap > 100*time.Millisecond {
			t.Errorf("%s: newest frame %v before the stop, want the ring drained up to it", p.Name, gap)
		}
	}
	t.Logf("stop %v after cancel; newest frame per point before the stop: %v", st.Stopped.Sub(before), func() []time.Duration {
		var d []time.Duration
		for _, l := range last {
			d = append(d, time.Duration(stop-l))
		}
		return d
	}())
}

// funcSinks makes Run's sinks call f with a private copy of each frame,
// one call at a time.
func funcSinks(n int, f func(point int, rf capture.RawFrame)) []Sink {
	mu := new(sync.Mutex)
	sinks := make([]Sink, n)
	for i := range sinks {
		sinks[i] = funcSink{i, mu, f}
	}
	return sinks
}

type funcSink struct {
	point int
	mu    *sync.Mutex
	f     func(int, capture.RawFrame)
}

func (s funcSink) Frame(rf *capture.RawFrame) {
	c := *rf
	c.Data = append([]byte(nil), rf.Data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f(s.point, c)
}

func (funcSink) Idle() {}

// TestRunReadsWhileArming: a point's reader starts as its socket is armed,
// not once every point is (arming the rest takes long enough beside a flood
// for the first rings to overflow); a point that cannot be armed, or a
// context done while arming, stops the readers already started and closes
// their sockets.
func TestRunReadsWhileArming(t *testing.T) {
	testenv.RequireRoot(t)
	tp := newTopo(t)
	pr, err := probe.New(tp.hPod1, tp.ip2, 9, []byte("ptarming"))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	points := []Point{tp.points[0], tp.points[2], tp.points[4]}
	// Point 1's Opened, while point 2 is not armed yet, waits until point 0
	// delivered a probe: only a reader running during the arming can.
	seen := make(chan struct{}, 1)
	sinks := funcSinks(len(points), func(i int, rf capture.RawFrame) {
		if i == 0 && strings.Contains(string(rf.Data), "ptarming") {
			select {
			case seen <- struct{}{}:
			default:
			}
		}
	})
	var from [3]time.Time
	delivered := false
	opened := func(i int, at time.Time) {
		from[i] = at
		if i != 1 {
			return
		}
		for seq := uint16(0); seq < 20 && !delivered; seq++ {
			if _, err := pr.Send(seq); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-seen:
				delivered = true
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	baseline, fds := runtime.NumGoroutine(), openFDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	armedAt := time.Time{}
	cfg := Config{Opened: opened, Armed: func(time.Duration) { armedAt = time.Now(); cancel() }}
	st, err := Run(ctx, points, cfg, sinks)
	if err != nil {
		t.Fatal(err)
	}
	if !delivered {
		t.Error("point 0 delivered no frame before the last point was armed")
	}
	for i, ps := range st.Points {
		if ps.From.IsZero() || !ps.From.Equal(from[i]) || ps.From.After(armedAt) {
			t.Errorf("point %d: From %v, Opened got %v, all armed at %v", i, ps.From, from[i], armedAt)
		}
		if i > 0 && !st.Points[i-1].From.Before(ps.From) {
			t.Errorf("points %d and %d armed at %v and %v, want in order", i-1, i, st.Points[i-1].From, ps.From)
		}
	}

	// The last point's interface does not exist; then a context done
	// while arming (after the first point).
	missing := Point{Name: "missing", Netns: tp.hNode, Ifname: "pt-nonexistent"}
	for _, c := range []struct {
		name   string
		points []Point
		cancel bool
		want   error
	}{
		{"a point cannot be armed", []Point{tp.points[0], tp.points[2], missing}, false, nil},
		{"done while arming", []Point{tp.points[0], tp.points[2], tp.points[4]}, true, context.Canceled},
	} {
		var idle [3]int
		var mu sync.Mutex
		counting := make([]Sink, 3)
		for i := range counting {
			counting[i] = idleSink{func() { mu.Lock(); idle[i]++; mu.Unlock() }}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var openedN int
		cfg := Config{
			Opened: func(int, time.Time) {
				if openedN++; c.cancel {
					cancel()
				}
			},
			Armed: func(time.Duration) { t.Errorf("%s: Armed called", c.name) },
		}
		begun := time.Now()
		_, err := Run(ctx, c.points, cfg, counting)
		cancel()
		t.Logf("%s: %v after %v", c.name, err, time.Since(begun))
		switch {
		case err == nil:
			t.Errorf("%s: no error", c.name)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		case c.want == nil && !strings.Contains(err.Error(), "missing"):
			t.Errorf("%s: err %v, want one naming the point", c.name, err)
		}
		if time.Since(begun) > 5*time.Second {
			t.Errorf("%s: Run took %v", c.name, time.Since(begun))
		}
		wantOpened := 2
		if c.cancel {
			wantOpened = 1
		}
		// A reader calls Idle when its ring is empty and once more as it
		// stops: at least once for each point armed, never for the rest.
		if openedN != wantOpened || idle[0] == 0 || (openedN == 2) != (idle[1] > 0) || idle[2] != 0 {
			t.Errorf("%s: %d points armed, Idle calls %v: want %d armed, each reader flushed, none for the rest", c.name, openedN, idle, wantOpened)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseline {
		t.Errorf("%d goroutines after Run, %d before", g, baseline)
	}
	if n := openFDs(t); n > fds {
		t.Errorf("%d open file descriptors after Run, %d before: a socket was not closed", n, fds)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

type idleSink struct{ idle func() }

func (idleSink) Frame(*capture.RawFrame) {}
func (s idleSink) Idle()                 { s.idle() }
