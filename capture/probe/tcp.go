package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// TCPProber sends TCP SYNs from a namespace over a raw socket, as a port
// scanner does: a Service's ClusterIP is rewritten (DNAT) by kube-proxy only
// for the protocols and ports it serves, never for ICMP echo. Probe seq n
// carries TCP sequence number base+n, so the answer (SYN-ACK, or RST from a
// closed port) acknowledges base+n+1. The namespace's own stack answers the
// SYN-ACK with a RST (no socket owns the connection), so nothing stays open
// on either side.
type TCPProber struct {
	src   netip.Addr
	dst   netip.AddrPort
	sport uint16
	base  uint32
	fd    int
	hold  int // a bound stream socket that keeps the source port ours
	buf   []byte
}

// NewTCP opens the raw TCP socket inside ns, bound to src (the endpoint's
// address: the checksum covers it), with a source port reserved by a bound
// stream socket so no connection of the pod's own uses it meanwhile.
func NewTCP(ns *netns.Handle, src netip.Addr, dst netip.AddrPort, base uint32) (*TCPProber, error) {
	src, ip := src.Unmap(), dst.Addr().Unmap()
	if !src.IsValid() || !ip.IsValid() || src.Is4() != ip.Is4() || dst.Port() == 0 {
		return nil, fmt.Errorf("TCP prober: want a source and a destination address of one family and a port, got %v → %v", src, dst)
	}
	p := &TCPProber{src: src, dst: netip.AddrPortFrom(ip, dst.Port()), base: base, fd: -1, hold: -1}
	err := netns.Do(ns, func() error {
		family := unix.AF_INET
		if ip.Is6() {
			family = unix.AF_INET6
		}
		var err error
		if p.hold, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("stream socket: %w", err)
		}
		if err = unix.Bind(p.hold, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
			return fmt.Errorf("reserve a port on %s: %w", src, err)
		}
		sa, err := unix.Getsockname(p.hold)
		if err != nil {
			return fmt.Errorf("reserved port: %w", err)
		}
		p.sport = portOf(sa)
		if p.fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP); err != nil {
			return fmt.Errorf("raw TCP socket: %w", err)
		}
		if err = unix.Bind(p.fd, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
			return fmt.Errorf("bind raw socket to %s: %w", src, err)
		}
		if ip.Is6() {
			// The kernel fills the checksum at offset 16 (it knows the
			// pseudo-header's addresses).
			return unix.SetsockoptInt(p.fd, unix.IPPROTO_RAW, unix.IPV6_CHECKSUM, 16)
		}
		return nil
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("TCP prober %s → %s in %s: %w", src, dst, ns.Path, err)
	}
	return p, nil
}

// SourcePort is the port the SYNs come from.
func (p *TCPProber) SourcePort() uint16 { return p.sport }

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func portOf(sa unix.Sockaddr) uint16 {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port)
	case *unix.SockaddrInet6:
		return uint16(a.Port)
	}
	return 0
}

// tcpSyn is a SYN header with an MSS option (a SYN without options looks
// like a scan to some middleboxes); the checksum is left zero.
func tcpSyn(b []byte, sport, dport uint16, seq uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, 0)          // ack
	b = append(b, 6<<4, 0x02)                        // data offset 24 bytes; SYN
	b = binary.BigEndian.AppendUint16(b, 64240)      // window
	b = append(b, 0, 0, 0, 0)                        // checksum, urgent
	return append(b, 2, 4, byte(1460>>8), 1460&0xff) // MSS 1460
}

// tcpChecksum is the TCP checksum over the IPv4 pseudo-header and seg.
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	s, d := src.As4(), dst.As4()
	ph := make([]byte, 0, 12+len(seg))
	ph = append(append(append(ph, s[:]...), d[:]...), 0, unix.IPPROTO_TCP)
	ph = binary.BigEndian.AppendUint16(ph, uint16(len(seg)))
	return icmpChecksum(append(ph, seg...))
}

// Send sends SYN seq and returns the time it was handed to the kernel.
func (p *TCPProber) Send(seq uint16) (time.Time, error) {
	msg := tcpSyn(p.buf[:0], p.sport, p.dst.Port(), p.base+uint32(seq))
	if p.dst.Addr().Is4() {
		binary.BigEndian.PutUint16(msg[16:], tcpChecksum(p.src, p.dst.Addr(), msg))
	}
	p.buf = msg
	now := time.Now()
	// Port 0 in the address: a raw socket's port field is the protocol.
	if err := unix.Sendto(p.fd, msg, 0, sockaddr(netip.AddrPortFrom(p.dst.Addr(), 0))); err != nil {
		return now, fmt.Errorf("send SYN seq %d to %s: %w", seq, p.dst, err)
	}
	return now, nil
}

// Recv waits until deadline for the answer to one of this prober's SYNs: a
// segment from the destination port to the source port acknowledging
// base+seq+1 (SYN-ACK, or RST from a closed port). It returns
// capture.ErrTimeout when the deadline passes.
func (p *TCPProber) Recv(deadline time.Time) (Reply, error) {
	buf := make([]byte, 65536)
	for {
		seg, src, at, err := recvRaw(p.fd, buf, deadline, "TCP prober to "+p.dst.String())
		if err != nil {
			return Reply{}, err
		}
		seq, ok := p.answer(seg)
		if !ok {
			continue
		}
		return Reply{From: src, Seq: seq, At: at}, nil
	}
}

// answer reports whether seg answers one of the SYNs, and which.
func (p *TCPProber) answer(seg []byte) (uint16, bool) {
	if len(seg) < 20 || binary.BigEndian.Uint16(seg[0:]) != p.dst.Port() || binary.BigEndian.Uint16(seg[2:]) != p.sport {
		return 0, false
	}
	const ack, rst, syn = 0x10, 0x04, 0x02
	flags := seg[13]
	if flags&ack == 0 || flags&(syn|rst) == 0 {
		return 0, false
	}
	d := binary.BigEndian.Uint32(seg[8:]) - 1 - p.base
	if d > 0xffff {
		return 0, false
	}
	return uint16(d), true
}

// Close closes the sockets and frees the source port.
func (p *TCPProber) Close() error {
	var errs []error
	for _, fd := range []*int{&p.fd, &p.hold} {
		if *fd >= 0 {
			if err := unix.Close(*fd); err != nil {
				errs = append(errs, err)
			}
			*fd = -1
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close TCP prober to %s: %w", p.dst, err)
	}
	return nil
}
