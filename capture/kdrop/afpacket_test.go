package kdrop

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// sniffer is a plain AF_PACKET socket with kernel receive stamps
// (SO_TIMESTAMPNS: the skb's stamp, the clock AF_PACKET captures use), to
// compare drop times with the capture's clock on the same frames.
type sniffer struct{ fd int }

func sniff(t *testing.T, nsPath string, ifindex int) *sniffer {
	t.Helper()
	h, err := netns.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	proto := int(binary.NativeEndian.Uint16([]byte{unix.ETH_P_ALL >> 8, unix.ETH_P_ALL & 0xff})) // htons
	var fd int
	if err := netns.Do(h, func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Usec: 200000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &sniffer{fd}
}

// stamps returns the receive stamp of each incoming frame whose IPv4
// packet is an echo request accepted by keep, keyed by ICMP seq, reading
// until a read times out.
func (s *sniffer) stamps(keep func(echo) bool) map[uint16]int64 {
	out := map[uint16]int64{}
	buf := make([]byte, 4096)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if err != nil {
			return out
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING || n < 14 {
			continue
		}
		e, ok := parseEcho(buf[14:n])
		if !ok || e.typ != 8 || !keep(e) {
			continue
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				out[e.seq] = time.Unix(sec, nsec).UnixNano()
			}
		}
	}
}

// keepTimestamps turns the kernel's receive timestamps on for the whole
// test: a socket asking for them flips a global static key, but in
// deferred work, so the first frame after the sniffer's own
// SO_TIMESTAMPNS can come without a stamp and get its read time instead
// (seen: 1.4 s late on a loaded CI machine).
func keepTimestamps(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the deferred work runs
}
