package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/capture/decode"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/internal/testenv"
)

// nodesPrefix is a prefix of this task's own ("ptt") for one test's lab.
func nodesPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return "ptt" + hex.EncodeToString(b[:]) + "-"
}

// nodesLeftovers lists what a two-node lab with prefix left behind: named
// namespaces, its state file, its CNI leases, tunnel processes.
func nodesLeftovers(prefix string, procs []tunnelProc) []string {
	left := leftovers(Config{Prefix: prefix})
	if _, err := os.Stat(ipamDir(prefix)); err == nil {
		left = append(left, ipamDir(prefix))
	}
	for _, p := range procs {
		if p.alive() {
			left = append(left, fmt.Sprintf("tunnel process %d", p.PID))
		}
	}
	return left
}

func upNodes(t *testing.T, cfg NodesConfig) *Lab {
	t.Helper()
	var procs []tunnelProc
	t.Cleanup(func() {
		if err := Down(Config{Prefix: cfg.Prefix}); err != nil {
			t.Errorf("Down: %v", err)
		}
		if left := nodesLeftovers(cfg.Prefix, procs); len(left) > 0 {
			t.Errorf("left after Down: %v", left)
		}
	})
	l, err := UpNodes(context.Background(), cfg)
	if err != nil {
		t.Fatalf("UpNodes: %v", err)
	}
	if st, err := readState(cfg.Prefix); err == nil {
		for _, n := range st.Nodes {
			procs = append(procs, n.Proc)
		}
	}
	return l
}

// wireCapture runs tcpdump on node B's eth0 until stop is called, and
// returns the frames it wrote.
func wireCapture(t *testing.T, node string) (stop func() []capture.RawFrame) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "eth0.pcap")
	cmd := exec.Command("ip", "netns", "exec", node, "tcpdump", "-n", "-i", "eth0", "--immediate-mode", "-U", "-w", file)
	errf, err := os.Create(filepath.Join(dir, "tcpdump.err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	stderr := func() string { b, _ := os.ReadFile(errf.Name()); return string(b) }
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; !strings.Contains(stderr(), "listening on"); i++ {
		if i == 100 {
			t.Fatalf("tcpdump on %s eth0 not listening: %s", node, stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() []capture.RawFrame {
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatalf("read %s: %v (tcpdump: %s)", file, err, stderr())
		}
		var frames []capture.RawFrame
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				return frames
			}
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, capture.RawFrame{Data: data, Time: ci.Timestamp.UnixNano(), WireLen: ci.Length,
				LinkType: capture.LinkType(r.LinkType()), Num: len(frames) + 1})
		}
	}
}

// For every backend: pod1 on node A pings pod2 on node B, and node B's eth0
// sees the echoes the way the backend carries them (checked with the
// decoder, whose tunnels are checked against tshark on its own).
func TestNodesBackends(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "ping", "tcpdump")
	pod1, pod2 := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.244.2.2")
	for _, c := range []struct {
		backend          Backend
		encap            correlate.EncapType
		innerTTL         uint8 // of a request on the wire: 64 less node A's forwarding (and flanneld's)
		dstPort, vni     uint32
		outerTTLInherits bool
	}{
		{BackendVXLAN, correlate.EncapVXLAN, 63, 8472, 1, false},
		{BackendHostGW, correlate.EncapNone, 63, 0, 0, false},
		{BackendIPIP, correlate.EncapIPIP, 63, 0, 0, true},
		{BackendUDP, correlate.EncapUDP, 62, 8285, 0, false},
		{BackendGENEVE, correlate.EncapGENEVE, 63, 6081, 1, false},
		{BackendIPsec, correlate.EncapESP, 0, 0, 0, false},
	} {
		t.Run(c.backend.String(), func(t *testing.T) {
			t.Parallel()
			cfg := NodesConfig{Prefix: nodesPrefix(), Backend: c.backend}
			l := upNodes(t, cfg)
			if len(l.Nodes) != 2 || len(l.Pods) != 2 || l.Pods[0].IP != pod1 || l.Pods[1].IP != pod2 ||
				l.Pods[0].Node != cfg.Prefix+"nodeA" || l.Pods[1].Node != cfg.Prefix+"nodeB" ||
				l.Nodes[0].Tunnel != c.backend.Device() || l.Nodes[1].IP != netip.MustParseAddr("192.168.56.2") {
				t.Fatalf("lab:\n%s", l)
			}
			if c.backend.Userspace() && (l.Nodes[0].TunnelPID == 0 || l.Nodes[1].TunnelPID == 0) {
				t.Errorf("no tunnel processes: %+v", l.Nodes)
			}
			stop := wireCapture(t, l.Nodes[1].Name)
			out, err := exec.Command("ip", "netns", "exec", l.Pods[0].Name, "ping", "-c", "3", "-i", "0.2", "-W", "2", pod2.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("ping pod2 from pod1: %v\n%s", err, out)
			}
			frames := stop()

			d := decode.New()
			var req, rep int
			for i := range frames {
				var f correlate.Frame
				if !d.Decode(&frames[i], &f) {
					continue
				}
				if c.encap == correlate.EncapESP && f.Encap.Type == c.encap {
					// Encrypted: the outer packet is the frame.
					switch {
					case f.SrcIP == l.Nodes[0].IP && f.DstIP == l.Nodes[1].IP:
						req++
					case f.SrcIP == l.Nodes[1].IP && f.DstIP == l.Nodes[0].IP:
						rep++
					}
					continue
				}
				if f.Key.Proto != correlate.ProtoICMP {
					continue
				}
				e := f.Encap
				switch {
				case f.SrcIP == pod1 && f.DstIP == pod2 && f.Key.Kind == 8:
					req++
					if f.TTL != c.innerTTL || e.Type == correlate.EncapNone && f.DstMAC.String() != l.Nodes[1].MAC {
						t.Errorf("request %d: TTL %d (want %d), MAC %v", f.Num, f.TTL, c.innerTTL, f.DstMAC)
					}
					if e.Type != correlate.EncapNone && (e.SrcIP != l.Nodes[0].IP || e.DstIP != l.Nodes[1].IP || e.DstMAC.String() != l.Nodes[1].MAC) {
						t.Errorf("request %d: outer %+v, want %s > %s to %s", f.Num, e, l.Nodes[0].IP, l.Nodes[1].IP, l.Nodes[1].MAC)
					}
					if c.outerTTLInherits && e.TTL != f.TTL {
						t.Errorf("request %d: outer TTL %d, inner %d: tunl0 inherits", f.Num, e.TTL, f.TTL)
					}
				case f.SrcIP == pod2 && f.DstIP == pod1 && f.Key.Kind == 0:
					rep++
				default:
					continue
				}
				if e.Type != c.encap || uint32(e.DstPort) != c.dstPort || e.VNI != c.vni || e.HasVNI != (c.vni != 0) {
					t.Errorf("frame %d: encap %+v, want %v port %d vni %d", f.Num, e, c.encap, c.dstPort, c.vni)
				}
			}
			if req != 3 || rep != 3 {
				t.Errorf("node B eth0 saw %d requests and %d replies of pod1's 3 echoes (%d frames)", req, rep, len(frames))
			}
			if l2, err := Status(Config{Prefix: cfg.Prefix}); err != nil || l2.String() != l.String() {
				t.Errorf("Status: %v\n%s\nwant\n%s", err, l2, l)
			}
		})
	}
}

// The tunnels belong to the lab, not to the process that built it: they
// keep running after it is SIGKILLed, and Down stops them.
func TestNodesDownAfterCrash(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "ping")
	prefix := nodesPrefix()
	t.Cleanup(func() { Down(Config{Prefix: prefix}) })
	upAndKill(t, fmt.Sprintf("nodes-up-and-wait,%s,10.244.0.0/24", prefix))
	st, err := readState(prefix)
	if err != nil {
		t.Fatal(err)
	}
	var procs []tunnelProc
	for _, n := range st.Nodes {
		procs = append(procs, n.Proc)
	}
	if _, err := Status(Config{Prefix: prefix}); err != nil {
		t.Fatalf("Status after the creator died: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "exec", prefix+"pod1", "ping", "-c", "1", "-W", "2", "10.244.2.2").CombinedOutput(); err != nil {
		t.Fatalf("ping across the tunnel after the creator died: %v\n%s", err, out)
	}
	// Forget the PIDs, as a crash between starting a tunnel and recording
	// it would: Down finds the processes inside the node namespaces.
	for i := range st.Nodes {
		st.Nodes[i].Proc = tunnelProc{}
	}
	if err := writeState(prefix, st); err != nil {
		t.Fatal(err)
	}
	if err := Down(Config{Prefix: prefix}); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if left := nodesLeftovers(prefix, procs); len(left) > 0 {
		t.Errorf("left after Down: %v", left)
	}
	if err := Down(Config{Prefix: prefix}); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// A lab without the CNI plugin is wired with netlink, and a second UpNodes
// with the same config returns the lab unchanged; another config of the
// same prefix is refused.
func TestNodesNetlinkIdempotent(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := NodesConfig{Prefix: nodesPrefix(), Backend: BackendHostGW, NoCNI: true}
	l := upNodes(t, cfg)
	again, err := UpNodes(context.Background(), cfg)
	if err != nil || again.String() != l.String() {
		t.Fatalf("second UpNodes: %v\n%s\nwant\n%s", err, again, l)
	}
	other := cfg
	other.Backend = BackendVXLAN
	if _, err := UpNodes(context.Background(), other); err == nil {
		t.Error("UpNodes with another backend of the same prefix succeeded")
	}
	if l.Pods[0].IP != netip.MustParseAddr("10.244.1.2") || !vethName.MatchString(l.Pods[1].HostVeth) {
		t.Errorf("netlink pods %+v", l.Pods)
	}
	if out, err := exec.Command("ip", "netns", "exec", l.Pods[1].Name, "ping", "-c", "1", "-W", "2", "10.244.1.2").CombinedOutput(); err != nil {
		t.Errorf("pod2 → pod1: %v\n%s", err, out)
	}
}

func TestTunnelArgs(t *testing.T) {
	s := TunnelSpec{Backend: BackendGENEVE, Dev: "genev_sys_6081", Local: netip.MustParseAddr("192.168.56.1"),
		Peer: netip.MustParseAddr("192.168.56.2"), PeerSubnet: netip.MustParsePrefix("10.244.2.0/24"), VNI: 7, SPI: 9, PeerSPI: 10}
	got, err := parseTunnelArgs(s.args())
	if err != nil || got != s {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	if !IsTunnelCommand(append([]string{"pathtrace", "lab", "tunnel"}, s.args()...)) || IsTunnelCommand([]string{"pathtrace", "lab", "up"}) {
		t.Error("IsTunnelCommand")
	}
	for _, bad := range [][]string{nil, {"--backend", "vxlan", "--dev", "x", "--local", "1.1.1.1", "--peer", "1.1.1.2", "--peer-subnet", "10.0.0.0/24"},
		{"--backend", "ipip"}, {"--backend", "ipip", "--dev", "t", "--local", "::1", "--peer", "1.1.1.2", "--peer-subnet", "10.0.0.0/24"}} {
		if _, err := parseTunnelArgs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if code := TunnelMain([]string{"--backend", "nonsense"}); code != 1 {
		t.Errorf("TunnelMain with bad args: %d", code)
	}
}

// decrementTTL keeps the header checksum right, as a fresh computation
// gives it.
func TestDecrementTTL(t *testing.T) {
	h := []byte{0x45, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 244, 1, 2, 10, 244, 2, 2}
	cs := func(h []byte) uint16 {
		var s uint32
		for i := 0; i < len(h); i += 2 {
			if i != 10 {
				s += uint32(h[i])<<8 | uint32(h[i+1])
			}
		}
		for s > 0xffff {
			s = s&0xffff + s>>16
		}
		return ^uint16(s)
	}
	for ttl := 64; ttl > 1; ttl-- {
		c := cs(h)
		h[10], h[11] = byte(c>>8), byte(c)
		if !decrementTTL(h) || h[8] != byte(ttl-1) {
			t.Fatalf("ttl %d: not decremented", ttl)
		}
		if got, want := uint16(h[10])<<8|uint16(h[11]), cs(h); got != want {
			t.Fatalf("ttl %d → %d: checksum %#04x, want %#04x", ttl, ttl-1, got, want)
		}
	}
	if decrementTTL(h) {
		t.Error("TTL 1 forwarded")
	}
}

// An ESP packet sealed by one SA opens with the same SPI and keys, and not
// once a bit of it changed or with another SPI.
func TestESPSealOpen(t *testing.T) {
	out, err := newESPSA(0x1001)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := newESPSA(0x1001)
	other, _ := newESPSA(0x1002)
	for n := 20; n < 120; n += 7 {
		p := bytes.Repeat([]byte{byte(n)}, n)
		esp, err := out.seal(p)
		if err != nil {
			t.Fatal(err)
		}
		if (len(esp)-8-espIV-espICV)%16 != 0 || binary.BigEndian.Uint32(esp[4:]) != out.seq {
			t.Fatalf("%d bytes: ESP payload of %d bytes, seq %d", n, len(esp), binary.BigEndian.Uint32(esp[4:]))
		}
		if _, ok := other.open(bytes.Clone(esp)); ok {
			t.Errorf("%d bytes: opened with another SPI", n)
		}
		bad := bytes.Clone(esp)
		bad[len(bad)/2] ^= 1
		if _, ok := in.open(bad); ok {
			t.Errorf("%d bytes: opened with a flipped bit", n)
		}
		got, ok := in.open(esp)
		if !ok || !bytes.Equal(got, p) {
			t.Errorf("%d bytes: open = %x, %v", n, got, ok)
		}
	}
}
