package kdrop

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
	"github.com/pathtrace/pathtrace/capture/probe"
	"github.com/pathtrace/pathtrace/netns"
)

// The program's cost, from the kernel's own BPF run-time statistics
// (BPF_ENABLE_STATS): ns per run of the program, and runs per packet sent.
// A packet that passes is never freed through kfree_skb (consume_skb is
// another tracepoint), so the program does not run for it at all: the
// pass benchmark shows 0 runs per packet. Run as root:
//
//	go test -run '^$' -bench . -benchtime 20000x ./capture/kdrop/

// benchNet: namespaces a -> b over a veth; b drops UDP to port 9 and ICMP
// echo requests in its input hook and has a UDP socket on port 10.
type benchNet struct {
	a, b  *netns.Handle
	bAddr netip.Addr
}

func newBenchNet(b *testing.B) *benchNet {
	nstest.RequireRoot(b)
	na, nb := nstest.Pair(b, "ptdkb", "10.254.99")
	nstest.Nft(b, nb, "table inet ptdbench {\n chain input {\n  type filter hook input priority 0;\n  udp dport 9 drop\n  icmp type echo-request drop\n }\n}\n")
	open := func(n string) *netns.Handle {
		h, err := netns.Open("/run/netns/" + n)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	return &benchNet{a: open(na), b: open(nb), bAddr: netip.MustParseAddr("10.254.99.2")}
}

// udpSender: a UDP socket in a, sending to b's port.
func (n *benchNet) udpSender(b *testing.B, port int) func() {
	var fd int
	if err := netns.Do(n.a, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	sa := &unix.SockaddrInet4{Port: port, Addr: n.bAddr.As4()}
	msg := make([]byte, 56)
	return func() {
		if err := unix.Sendto(fd, msg, 0, sa); err != nil {
			b.Fatal(err)
		}
	}
}

// udpSink: a UDP socket in b on port, drained by a goroutine.
func (n *benchNet) udpSink(b *testing.B, port int) {
	var fd int
	if err := netns.Do(n.b, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			// Room for every packet of the run: a full buffer would drop
			// (SOCKET_RCVBUFF) and run the program.
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20)
		}
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrInet4{Port: port})
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { unix.Close(fd) })
}

// measure runs send b.N times with the watcher attached and reports the
// program's ns per run and runs per packet.
func measure(b *testing.B, w *Watcher, send func()) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	before, err := w.objs.KdropKfreeSkb.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send()
	}
	b.StopTimer()
	time.Sleep(50 * time.Millisecond) // let softirqs finish
	after, err := w.objs.KdropKfreeSkb.Stats()
	if err != nil {
		b.Fatal(err)
	}
	runs := after.RunCount - before.RunCount
	b.ReportMetric(float64(runs)/float64(b.N), "runs/pkt")
	if runs > 0 {
		b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(runs), "bpf-ns/run")
	}
}

func benchWatcher(b *testing.B, tag []byte) *Watcher {
	w, err := Open(Match{EchoID: 0x4242, HasEchoID: true, Payload: tag[:MaxPayload]})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return w
}

// A dropped packet that is not the run's: the common case on a busy host.
func BenchmarkDropUnrelated(b *testing.B) {
	n := newBenchNet(b)
	w := benchWatcher(b, []byte("ptdbenchptdbench"))
	measure(b, w, n.udpSender(b, 9))
}

// A dropped probe: matched and copied to the ring buffer (drained here).
func BenchmarkDropProbe(b *testing.B) {
	n := newBenchNet(b)
	tag := []byte("ptdbenchptdbench-padding-to-46-bytes-of-tag..")
	w := benchWatcher(b, tag)
	go func() {
		for {
			if _, err := w.rd.Read(); err != nil {
				return
			}
		}
	}()
	p, err := probe.New(n.a, n.bAddr, 0x4242, tag)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	seq := uint16(0)
	measure(b, w, func() {
		seq++
		if _, err := p.Send(seq); err != nil {
			b.Fatal(err)
		}
	})
	if l := w.Lost(); l > 0 {
		b.Logf("%d events lost (ring buffer full)", l)
	}
}

// A packet that is delivered: the program does not run (0 runs/pkt); the
// ns/op against BenchmarkPassNoWatcher is the whole path's cost.
func BenchmarkPass(b *testing.B) {
	n := newBenchNet(b)
	n.udpSink(b, 10)
	w := benchWatcher(b, []byte("ptdbenchptdbench"))
	measure(b, w, n.udpSender(b, 10))
}

func BenchmarkPassNoWatcher(b *testing.B) {
	n := newBenchNet(b)
	n.udpSink(b, 10)
	send := n.udpSender(b, 10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send()
	}
}
