package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/netns"
)

// Probe payload: tag, then seq (2 bytes) and the send time (8 bytes, ns since
// the epoch), both big endian. The tag is unique to a run, so the correlator
// can tell pathtrace's probes from anybody else's pings with the same id.
const probeTrailer = 2 + 8

// Prober sends ICMP (IPv4) or ICMPv6 echo requests from a namespace over a
// raw socket. A raw socket is needed because an unprivileged ICMP datagram
// socket replaces the echo id with its local port.
type Prober struct {
	dst netip.Addr
	id  uint16
	tag []byte
	fd  int
	buf []byte
}

// Reply is an echo reply read back by Prober.Recv.
type Reply struct {
	From   netip.Addr
	Seq    uint16
	SentAt int64 // send time carried in the payload, ns since the epoch
	At     time.Time
}

// New opens the raw ICMP socket inside ns (so routing and the source
// address are the pod's).
func New(ns *netns.Handle, dst netip.Addr, id uint16, payloadTag []byte) (*Prober, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return nil, errors.New("prober: invalid destination")
	}
	p := &Prober{dst: dst, id: id, tag: append([]byte(nil), payloadTag...), fd: -1}
	err := netns.Do(ns, func() error {
		var err error
		if dst.Is4() {
			p.fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		} else {
			p.fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prober to %s: raw ICMP socket in %s: %w", dst, ns.Path, err)
	}
	// Only echo replies reach the socket; everything else stays in the kernel.
	if dst.Is4() {
		err = unix.SetsockoptInt(p.fd, unix.SOL_RAW, unix.ICMP_FILTER, ^(1 << 0))
	} else {
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0)
		}
		f.Data[129>>5] &^= 1 << (129 & 31)
		err = unix.SetsockoptICMPv6Filter(p.fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("prober to %s: set ICMP filter: %w", dst, err)
	}
	return p, nil
}

// Payload builds the echo payload for seq sent at ns.
func Payload(tag []byte, seq uint16, sentNs int64) []byte {
	b := append([]byte(nil), tag...)
	b = binary.BigEndian.AppendUint16(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(sentNs))
}

// ParsePayload reports whether payload is one of tag's probes and
// returns its seq and send time.
func ParsePayload(tag, payload []byte) (seq uint16, sentNs int64, ok bool) {
	if len(payload) != len(tag)+probeTrailer || !bytes.HasPrefix(payload, tag) {
		return 0, 0, false
	}
	t := payload[len(tag):]
	return binary.BigEndian.Uint16(t), int64(binary.BigEndian.Uint64(t[2:])), true
}

// Send sends echo request seq and returns the time it was handed to the
// kernel (the same time the payload carries).
func (p *Prober) Send(seq uint16) (time.Time, error) {
	typ := byte(8)
	if p.dst.Is6() {
		typ = 128
	}
	now := time.Now()
	msg := append(p.buf[:0], typ, 0, 0, 0, byte(p.id>>8), byte(p.id), byte(seq>>8), byte(seq))
	msg = append(msg, Payload(p.tag, seq, now.UnixNano())...)
	var sa unix.Sockaddr
	if p.dst.Is4() {
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		sa = &unix.SockaddrInet4{Addr: p.dst.As4()}
	} else {
		// The kernel fills the ICMPv6 checksum (it needs the pseudo-header).
		sa = &unix.SockaddrInet6{Addr: p.dst.As16()}
	}
	p.buf = msg
	if err := unix.Sendto(p.fd, msg, 0, sa); err != nil {
		return now, fmt.Errorf("send echo request seq %d to %s: %w", seq, p.dst, err)
	}
	return now, nil
}

// Recv waits until deadline for an echo reply to one of this prober's
// probes (matching id and tag); other replies are skipped. It returns
// capture.ErrTimeout when the deadline passes.
func (p *Prober) Recv(deadline time.Time) (Reply, error) {
	buf := make([]byte, 65536)
	for {
		msg, src, at, err := recvRaw(p.fd, buf, deadline, "prober to "+p.dst.String())
		if err != nil {
			return Reply{}, err
		}
		if len(msg) < 8 || (msg[0] != 0 && msg[0] != 129) || binary.BigEndian.Uint16(msg[4:]) != p.id {
			continue
		}
		seq, sent, ok := ParsePayload(p.tag, msg[8:])
		if !ok || seq != binary.BigEndian.Uint16(msg[6:]) {
			continue
		}
		return Reply{From: src, Seq: seq, SentAt: sent, At: at}, nil
	}
}

// recvRaw waits until deadline for the next datagram on a raw IP socket
// and returns it without its IPv4 header (IPv4 raw sockets deliver it,
// IPv6 ones do not), its source and when it was read; capture.ErrTimeout
// once the deadline passes. what names the socket in errors.
func recvRaw(fd int, buf []byte, deadline time.Time, what string) ([]byte, netip.Addr, time.Time, error) {
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			return nil, netip.Addr{}, time.Time{}, capture.ErrTimeout
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, netip.Addr{}, time.Time{}, fmt.Errorf("%s: poll: %w", what, err)
		}
		if n == 0 {
			return nil, netip.Addr{}, time.Time{}, capture.ErrTimeout
		}
		m, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, netip.Addr{}, time.Time{}, fmt.Errorf("%s: receive: %w", what, err)
		}
		at := time.Now()
		msg := buf[:m]
		var src netip.Addr
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			src = netip.AddrFrom4(sa.Addr)
			if len(msg) < 20 || int(msg[0]&0xf)*4 > len(msg) {
				continue
			}
			msg = msg[int(msg[0]&0xf)*4:]
		case *unix.SockaddrInet6:
			src = netip.AddrFrom16(sa.Addr)
		}
		return msg, src, at, nil
	}
}

// Close closes the socket.
func (p *Prober) Close() error {
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	if err != nil {
		return fmt.Errorf("close prober to %s: %w", p.dst, err)
	}
	return nil
}

// icmpChecksum is the Internet checksum (RFC 1071) of b.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
