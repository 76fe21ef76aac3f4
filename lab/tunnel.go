package lab

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// This kernel has no ipip, gre or geneve link types, so the lab's ipip,
// udp and geneve backends move packets between a TUN/TAP device and a
// socket in userspace, putting on the wire what the kernel device (or
// flanneld) would. Flannel's udp backend is such a userspace TUN tunnel
// itself (flanneld's proxy), so that one is the real thing.
//
// One tunnel runs per node, as a process of its own started inside the
// node's namespace ("pathtrace lab tunnel ..."; tunproc.go starts and
// stops it), so it outlives "lab up" and is gone with "lab down".

// Ports and headers of the userspace tunnels.
const (
	flannelUDPPort = 8285
	genevePort     = 6081
	// geneveOpt is the 8-byte option OVN-Kubernetes puts in every GENEVE
	// header (class 0x0102 OVN, type 0x80, one 4-byte word: the logical
	// ingress and egress port keys), so the captures carry options the
	// decoder must skip.
	geneveOptClass = 0x0102
	geneveOptType  = 0x80
)

// TunnelSpec is what one tunnel process does.
type TunnelSpec struct {
	Backend    Backend
	Dev        string       // the TUN (ipip, udp) or TAP (geneve) device, made persistent by the lab
	Local      netip.Addr   // this node's eth0 address
	Peer       netip.Addr   // the other node's
	PeerSubnet netip.Prefix // pod subnet behind Peer: flanneld's route table
	VNI        uint32       // geneve
	SPI        uint32       // ipsec: the outbound SA's
	PeerSPI    uint32       // ipsec: the inbound SA's (the peer's outbound)
}

// args is the spec as "lab tunnel" flags.
func (s TunnelSpec) args() []string {
	return []string{"--backend", s.Backend.String(), "--dev", s.Dev, "--local", s.Local.String(),
		"--peer", s.Peer.String(), "--peer-subnet", s.PeerSubnet.String(), "--vni", fmt.Sprint(s.VNI),
		"--spi", fmt.Sprint(s.SPI), "--peer-spi", fmt.Sprint(s.PeerSPI)}
}

func parseTunnelArgs(args []string) (TunnelSpec, error) {
	var s TunnelSpec
	fs := flag.NewFlagSet("lab tunnel", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.TextVar(&s.Backend, "backend", BackendIPIP, "ipip, udp, geneve or ipsec")
	fs.StringVar(&s.Dev, "dev", "", "TUN/TAP device")
	fs.TextVar(&s.Local, "local", netip.Addr{}, "this node's address")
	fs.TextVar(&s.Peer, "peer", netip.Addr{}, "the other node's address")
	fs.TextVar(&s.PeerSubnet, "peer-subnet", netip.Prefix{}, "pod subnet behind the peer")
	vni := fs.Uint("vni", 1, "GENEVE VNI")
	spi := fs.Uint("spi", espSPIBase+1, "ESP SPI out")
	peerSPI := fs.Uint("peer-spi", espSPIBase+2, "ESP SPI in")
	if err := fs.Parse(args); err != nil {
		return s, fmt.Errorf("lab tunnel: %w", err)
	}
	s.VNI, s.SPI, s.PeerSPI = uint32(*vni), uint32(*spi), uint32(*peerSPI)
	if !s.Backend.Userspace() || s.Dev == "" || !s.Local.Is4() || !s.Peer.Is4() || !s.PeerSubnet.IsValid() || fs.NArg() > 0 {
		return s, fmt.Errorf("lab tunnel: need --backend ipip|udp|geneve|ipsec, --dev, --local, --peer, --peer-subnet (got %q)", strings.Join(args, " "))
	}
	return s, nil
}

// IsTunnelCommand reports whether args (os.Args) ask for a tunnel process:
// PROGRAM lab tunnel .... A test binary that builds labs with a userspace
// backend must check it first in TestMain and then call TunnelMain, because
// the lab re-executes its own binary (os.Executable) to run the tunnel.
func IsTunnelCommand(args []string) bool {
	return len(args) > 2 && args[1] == "lab" && args[2] == "tunnel"
}

// TunnelMain runs the tunnel that args (what follows "lab tunnel")
// describe, until the process is killed. It says "ok" or the error on file
// descriptor 3 when that is a pipe (the lab waits for it), and returns the
// exit status.
func TunnelMain(args []string) int {
	ready := os.NewFile(3, "ready")
	if st, err := ready.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		ready = nil
	}
	say := func(msg string) {
		if ready != nil {
			fmt.Fprintln(ready, msg)
			ready.Close()
			ready = nil
		}
	}
	s, err := parseTunnelArgs(args)
	if err == nil {
		err = runTunnel(s, func() { say("ok") })
	}
	say("error: " + err.Error())
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// tunnel is one running tunnel: the device and the socket to the peer.
type tunnel struct {
	TunnelSpec
	dev  *os.File
	sock int
	peer unix.SockaddrInet4
	id   uint16 // next outer IPv4 id (ipip), used by up only
	out  *espSA // ipsec: used by up only
	in   *espSA // ipsec: used by down only
}

// runTunnel attaches to the device, opens the socket, calls ready and moves
// packets both ways until one direction fails.
func runTunnel(s TunnelSpec, ready func()) error {
	t := &tunnel{TunnelSpec: s, peer: unix.SockaddrInet4{Addr: s.Peer.As4()}, id: uint16(os.Getpid() * 7919)}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if s.Backend == BackendGENEVE {
		flags = unix.IFF_TAP | unix.IFF_NO_PI
	}
	var err error
	if t.dev, err = openTun(s.Dev, flags); err != nil {
		return err
	}
	defer t.dev.Close()
	if err := t.openSocket(); err != nil {
		return err
	}
	defer unix.Close(t.sock)
	ready()
	errs := make(chan error, 2)
	go func() { errs <- t.up() }()
	go func() { errs <- t.down() }()
	return <-errs
}

// openTun attaches to the TUN/TAP device name. Blocking reads and writes on
// the returned file are plain syscalls, one goroutine per direction.
func openTun(name string, flags uint16) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach to %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}

func (t *tunnel) openSocket() error {
	local := &unix.SockaddrInet4{Addr: t.Local.As4()}
	var err error
	switch t.Backend {
	case BackendIPIP:
		// The outer header is built here (IP_HDRINCL), as the kernel's
		// tunl0 builds it: TTL and DF inherited from the inner packet.
		if t.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP); err != nil {
			return fmt.Errorf("raw IPPROTO_IPIP socket: %w", err)
		}
		if err := unix.SetsockoptInt(t.sock, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			return fmt.Errorf("IP_HDRINCL: %w", err)
		}
	case BackendUDP, BackendGENEVE:
		if t.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("UDP socket: %w", err)
		}
		local.Port, t.peer.Port = flannelUDPPort, flannelUDPPort
		if t.Backend == BackendGENEVE {
			local.Port, t.peer.Port = genevePort, genevePort
			// The kernel's geneve devices send with DF clear by default.
			if err := unix.SetsockoptInt(t.sock, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
				return fmt.Errorf("IP_MTU_DISCOVER: %w", err)
			}
		}
	case BackendIPsec:
		// The kernel builds the outer header (protocol 50, TTL 64).
		if t.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ESP); err != nil {
			return fmt.Errorf("raw IPPROTO_ESP socket: %w", err)
		}
		if t.out, err = newESPSA(t.SPI); err != nil {
			return err
		}
		if t.in, err = newESPSA(t.PeerSPI); err != nil {
			return err
		}
	default:
		return fmt.Errorf("backend %v has no userspace tunnel", t.Backend)
	}
	if err := unix.Bind(t.sock, local); err != nil {
		return fmt.Errorf("bind %s port %d: %w", t.Local, local.Port, err)
	}
	return nil
}

// up moves packets from the device to the peer.
func (t *tunnel) up() error {
	buf := make([]byte, 65536)
	const hdr = 20 // room for the outer IPv4 header (ipip) or GENEVE's 16 bytes
	for {
		n, err := t.dev.Read(buf[hdr:])
		if err != nil {
			return fmt.Errorf("read %s: %w", t.Dev, err)
		}
		p := buf[hdr : hdr+n]
		var out []byte
		switch t.Backend {
		case BackendIPIP:
			if !isIPv4(p) {
				continue
			}
			out = buf[:hdr+n]
			t.ipipHeader(out[:hdr], p)
		case BackendUDP:
			// flanneld's proxy: route by destination, drop what has no
			// route, decrement the TTL (it forwards, as a router would).
			if !isIPv4(p) || !t.PeerSubnet.Contains(netip.AddrFrom4([4]byte(p[16:20]))) || !decrementTTL(p) {
				continue
			}
			out = p
		case BackendGENEVE:
			out = buf[hdr-16 : hdr+n]
			t.geneveHeader(out[:16])
		case BackendIPsec:
			if !isIPv4(p) {
				continue
			}
			if out, err = t.out.seal(p); err != nil {
				return fmt.Errorf("ESP: %w", err)
			}
		}
		if err := unix.Sendto(t.sock, out, 0, &t.peer); err != nil && !transient(err) {
			return fmt.Errorf("send to %s: %w", t.Peer, err)
		}
	}
}

// down moves packets from the peer to the device.
func (t *tunnel) down() error {
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(t.sock, buf, 0)
		if err != nil {
			if transient(err) {
				continue
			}
			return fmt.Errorf("receive on %s: %w", t.Local, err)
		}
		p := buf[:n]
		switch t.Backend {
		case BackendIPIP, BackendIPsec:
			// A raw IPv4 socket receives the whole packet, outer header
			// included. Only the peer's packets are this tunnel's.
			if !isIPv4(p) || netip.AddrFrom4([4]byte(p[12:16])) != t.Peer {
				continue
			}
			p = p[int(p[0]&0x0f)*4:]
			if t.Backend == BackendIPsec {
				var ok bool
				if p, ok = t.in.open(p); !ok {
					continue
				}
			}
			if !isIPv4(p) {
				continue
			}
		case BackendUDP:
			if !isIPv4(p) || !decrementTTL(p) {
				continue
			}
		case BackendGENEVE:
			if sa, ok := from.(*unix.SockaddrInet4); !ok || netip.AddrFrom4(sa.Addr) != t.Peer {
				continue
			}
			var ok bool
			if p, ok = t.geneveInner(p); !ok {
				continue
			}
		}
		if _, err := t.dev.Write(p); err != nil && !transient(err) {
			return fmt.Errorf("write %s: %w", t.Dev, err)
		}
	}
}

// ipipHeader fills h with the outer IPv4 header for inner packet p, as the
// kernel's fallback tunl0 ("ttl inherit", ECN copied) does: an id of its
// own on every packet, DF included (the kernel leaves 0 in a raw DF packet's
// id; a tunnel does not). The kernel fills in the checksum (IP_HDRINCL).
func (t *tunnel) ipipHeader(h, p []byte) {
	clear(h)
	h[0] = 0x45
	h[1] = p[1] & 0x03 // ECN of the inner packet
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(p)))
	if t.id++; t.id == 0 {
		t.id++
	}
	binary.BigEndian.PutUint16(h[4:], t.id)
	h[6] = p[6] & 0x40 // DF of the inner packet
	h[8] = p[8]        // TTL inherited
	h[9] = unix.IPPROTO_IPIP
	l, r := t.Local.As4(), t.Peer.As4()
	copy(h[12:16], l[:])
	copy(h[16:20], r[:])
}

// geneveHeader fills h (16 bytes) with a GENEVE header carrying an Ethernet
// frame and OVN's option.
func (t *tunnel) geneveHeader(h []byte) {
	h[0] = 2 // version 0, options: two 4-byte words
	h[1] = 0
	binary.BigEndian.PutUint16(h[2:], 0x6558)
	binary.BigEndian.PutUint32(h[4:], t.VNI<<8)
	binary.BigEndian.PutUint16(h[8:], geneveOptClass)
	h[10], h[11] = geneveOptType, 1
	binary.BigEndian.PutUint32(h[12:], 0x00010002) // ingress port key 1, egress 2
}

// geneveInner returns the Ethernet frame of a GENEVE packet of this VNI.
func (t *tunnel) geneveInner(p []byte) ([]byte, bool) {
	if len(p) < 8 || p[0]>>6 != 0 || binary.BigEndian.Uint16(p[2:]) != 0x6558 || binary.BigEndian.Uint32(p[4:])>>8 != t.VNI {
		return nil, false
	}
	hl := 8 + int(p[0]&0x3f)*4
	if len(p) < hl+14 {
		return nil, false
	}
	return p[hl:], true
}

func isIPv4(p []byte) bool {
	return len(p) >= 20 && p[0]>>4 == 4 && int(p[0]&0x0f)*4 <= len(p) && p[0]&0x0f >= 5
}

// decrementTTL lowers an IPv4 packet's TTL and patches its checksum (RFC
// 1624), as flanneld's proxy does; false when the TTL runs out.
func decrementTTL(p []byte) bool {
	if p[8] <= 1 {
		return false
	}
	p[8]--
	sum := uint32(binary.BigEndian.Uint16(p[10:])) + 0x0100
	sum = sum&0xffff + sum>>16
	binary.BigEndian.PutUint16(p[10:], uint16(sum))
	return true
}

// transient errors leave the tunnel running: a peer that is not there yet
// (ICMP errors surface on the socket), a full queue.
func transient(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.EMSGSIZE)
}
