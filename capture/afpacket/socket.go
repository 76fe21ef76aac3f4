package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/capture"
	"github.com/pathtrace/pathtrace/correlate"
	"github.com/pathtrace/pathtrace/netns"
)

// The live reader drives a TPACKET_V3 ring itself instead of using gopacket's
// afpacket: afpacket hides sll_pkttype (so in/out direction is lost), binds
// with ETH_P_ALL before a filter can be attached (unfiltered frames land in
// the ring), and reports interface loss as a bare ErrPoll.

// Ring sizing. DefaultRingBytes is enough for probes and the ARP/ND around
// them at several points; raise it (Config.RingBytes, a CLI flag) when
// the filter lets heavy traffic through.
const (
	DefaultRingBytes = 4 << 20
	// The kernel hands a block over once full or after ringBlockTimeout,
	// even with one frame in it, and drops when no block is free: at low
	// rates a reader may stall for about blocks x timeout, so prefer many
	// small blocks. 128 KiB still holds a 64 KiB GSO frame.
	ringBlockSize    = 128 << 10
	ringMinBlocks    = 8
	ringFrameSize    = 2048 // TPACKET_V3 ignores it except for validation
	ringBlockTimeout = 8    // ms before a partly filled block is handed over
	pollTimeout      = 50   // ms: bounds how long Next blocks
)

// Point is one place to capture live.
type Point struct {
	Name       string        // point name (pod1, cni0...), used in errors
	NetnsLabel string        // namespace label for capture.Interface.Netns
	Netns      *netns.Handle // namespace the interface lives in
	Ifname     string        // interface name inside Netns
	IfIndex    int           // ifindex inside Netns; 0 = resolve Ifname
	Promisc    bool          // join PACKET_MR_PROMISC (bridges: see bridged unicast)
	// Filter, when set, is this point's own filter (a tunnel or underlay
	// device's), built for the link type the device turns out to have;
	// otherwise the filter Open is given applies.
	Filter *FilterSpec
}

// Socket is one AF_PACKET socket with a mapped TPACKET_V3 ring. Stats
// may be called from any goroutine; Next and Close must be called from one
// goroutine at a time (Close unmaps the ring Next reads).
type Socket struct {
	point   Point
	iface   capture.Interface
	fd      int
	ring    []byte
	nblocks int
	bsize   int

	// reader state (Next only)
	block   int    // current block index
	inBlock bool   // current block is user-owned and being walked
	left    uint32 // packets left in the current block
	pkt     int    // offset of the next packet header within the ring
	num     int
	buf     []byte
	lateErr error // interface lost: returned once the ring is empty

	mu          sync.Mutex // guards fd/ring lifetime against Stats/Close
	closed      bool
	pkts, drops uint64
}

var _ capture.Source = (*Socket)(nil)

// Open opens an AF_PACKET socket on p's interface inside p's namespace,
// with filter attached before any frame can be queued (the socket is created
// with protocol 0, which receives nothing, and only bound to ETH_P_ALL once
// the filter and ring are in place), so the ring holds no unfiltered frames.
// A nil filter captures everything. ringBytes <= 0 means DefaultRingBytes.
func Open(p Point, filter []bpf.RawInstruction, ringBytes int) (*Socket, error) {
	if ringBytes <= 0 {
		ringBytes = DefaultRingBytes
	}
	nblocks := (ringBytes + ringBlockSize - 1) / ringBlockSize
	if nblocks < ringMinBlocks {
		nblocks = ringMinBlocks
	}
	if p.Netns == nil {
		return nil, fmt.Errorf("open capture point %s: no network namespace", p.Name)
	}
	s := &Socket{point: p, fd: -1, nblocks: nblocks, bsize: ringBlockSize}
	err := netns.Do(p.Netns, func() error { return s.open(filter) })
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open capture point %s (%s in %s): %w", p.Name, p.Ifname, p.Netns.Path, err)
	}
	return s, nil
}

// open runs inside the namespace: everything that resolves names or
// creates the socket must happen here.
func (s *Socket) open(filter []bpf.RawInstruction) error {
	p := s.point
	var ifc *net.Interface
	var err error
	if p.IfIndex > 0 {
		ifc, err = net.InterfaceByIndex(p.IfIndex)
		if err == nil && p.Ifname != "" && ifc.Name != p.Ifname {
			err = fmt.Errorf("ifindex %d is %s, not %s", p.IfIndex, ifc.Name, p.Ifname)
		}
	} else {
		ifc, err = net.InterfaceByName(p.Ifname)
	}
	if err != nil {
		return fmt.Errorf("find interface: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket AF_PACKET: %w", err)
	}
	s.fd = fd
	lt, err := linkType(fd, ifc.Name)
	if err != nil {
		return err
	}
	s.iface = capture.Interface{
		Name: ifc.Name, IfIndex: ifc.Index, LinkType: lt,
		Snaplen: FilterSnaplen, HasDrops: true, Netns: p.NetnsLabel, MTU: ifc.MTU,
	}
	if p.Filter != nil {
		spec := *p.Filter
		spec.Link = lt
		if filter, err = BuildFilter(spec); err != nil {
			return fmt.Errorf("filter for %s: %w", ifc.Name, err)
		}
	} else if lt != capture.LinkTypeEthernet && len(filter) > 0 {
		return fmt.Errorf("%s has no Ethernet header (%v): the filter given is for Ethernet frames", ifc.Name, lt)
	}
	// Ask for receive stamps: the kernel then stamps a frame once, when it
	// enters the node, and every tap after that (a bridge passing it up)
	// reports that stamp — as tcpdump's captures do. Without it each tap
	// stamps its own delivery, and a bridge's local copy, delivered after
	// the egress port's, would show a negative hop.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable receive timestamps: %w", err)
	}
	if len(filter) > 0 {
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("attach BPF filter: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("set TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size: uint32(s.bsize), Block_nr: uint32(s.nblocks),
		Frame_size: ringFrameSize, Frame_nr: uint32(s.bsize / ringFrameSize * s.nblocks),
		Retire_blk_tov: ringBlockTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("set up %d-byte rx ring: %w", s.bsize*s.nblocks, err)
	}
	s.ring, err = unix.Mmap(fd, 0, s.bsize*s.nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap rx ring: %w", err)
	}
	if p.Promisc {
		// A membership, not IFF_PROMISC via ioctl: the kernel drops it when the
		// socket closes, even if pathtrace is killed.
		mreq := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fmt.Errorf("join promiscuous membership: %w", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind to ifindex %d: %w", ifc.Index, err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// linkType is what the device's frames start with, from its ARPHRD type:
// devices without header_ops (TUN, IP-in-IP and other IP tunnels) hand a
// packet socket the IP packet itself.
func linkType(fd int, name string) (capture.LinkType, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, fmt.Errorf("hardware type of %s: %w", name, err)
	}
	switch hw := ifr.Uint16(); hw {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return capture.LinkTypeEthernet, nil
	case unix.ARPHRD_NONE, unix.ARPHRD_TUNNEL, unix.ARPHRD_TUNNEL6, unix.ARPHRD_SIT, unix.ARPHRD_IPGRE, unix.ARPHRD_RAWIP:
		return capture.LinkTypeRaw, nil
	default:
		return 0, fmt.Errorf("%s: hardware type %d: pathtrace captures Ethernet and IP tunnel devices only", name, hw)
	}
}

// Point returns the point the source was opened for.
func (s *Socket) Point() Point { return s.point }

func (s *Socket) Interfaces() []capture.Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	ifc := s.iface
	ifc.Drops = s.drops
	return []capture.Interface{ifc}
}

func (s *Socket) Warnings() []string { return nil }

// Block descriptor and packet header offsets (linux/if_packet.h).
const (
	bdBlockStatus = 8  // tpacket_hdr_v1.block_status
	bdNumPkts     = 12 // tpacket_hdr_v1.num_pkts
	bdFirstPkt    = 16 // tpacket_hdr_v1.offset_to_first_pkt
	phNext        = 0  // tpacket3_hdr.tp_next_offset
	phSec         = 4
	phNsec        = 8
	phSnaplen     = 12
	phLen         = 16
	phStatus      = 20
	phMac         = 24
	phVlanTCI     = 32
	phVlanTPID    = 36
	phSll         = 48 // TPACKET_ALIGN(sizeof(tpacket3_hdr))
	sllHatype     = 8
	sllPkttype    = 10
)

var ne = binary.NativeEndian

func (s *Socket) blockStatus(b int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.ring[b*s.bsize+bdBlockStatus]))
}

// Next returns the next frame, capture.ErrTimeout when none arrived within the poll
// timeout (not fatal), or a fatal error naming the point when the socket
// failed (e.g. the interface was deleted), after every frame already in the
// ring. capture.RawFrame.Data is the ring's memory (the kernel gets the block back
// on a later call): valid until the next call, copy what you keep.
func (s *Socket) Next() (capture.RawFrame, error) {
	if s.ring == nil {
		return capture.RawFrame{}, fmt.Errorf("capture point %s: %w", s.point.Name, net.ErrClosed)
	}
	for {
		if s.inBlock && s.left > 0 {
			return s.frame(), nil
		}
		if s.inBlock {
			// Hand the block back to the kernel (TP_STATUS_KERNEL), its
			// count cleared so Pending never reads a stale one (the kernel
			// resets it only when it opens the block again).
			atomic.StoreUint32((*uint32)(unsafe.Pointer(&s.ring[s.block*s.bsize+bdNumPkts])), 0)
			atomic.StoreUint32(s.blockStatus(s.block), 0)
			s.inBlock = false
			s.block = (s.block + 1) % s.nblocks
		}
		if atomic.LoadUint32(s.blockStatus(s.block))&unix.TP_STATUS_USER != 0 {
			base := s.block * s.bsize
			s.inBlock = true
			s.left = ne.Uint32(s.ring[base+bdNumPkts:])
			s.pkt = base + int(ne.Uint32(s.ring[base+bdFirstPkt:]))
			continue
		}
		if s.lateErr != nil {
			return capture.RawFrame{}, s.lateErr
		}
		if err := s.poll(pollTimeout); err != nil {
			return capture.RawFrame{}, err
		}
	}
}

// Ready reports whether Next has a frame without waiting: false means the
// ring is empty for now.
func (s *Socket) Ready() bool {
	if s.ring == nil {
		return false
	}
	if s.inBlock && s.left > 0 {
		return true
	}
	return atomic.LoadUint32(s.blockStatus(s.nextBlock()))&unix.TP_STATUS_USER != 0
}

// nextBlock is the block Next reads after the current one.
func (s *Socket) nextBlock() int {
	if s.inBlock {
		return (s.block + 1) % s.nblocks
	}
	return s.block
}

// Pending reports whether the ring holds frames Next has not returned: in
// a block already handed over (Ready), or in the block the kernel is
// filling, which it hands over only when the block's retire timer fires
// (late on a loaded machine). A drain is over only when it is false: the
// timer may hand the block over at any moment, also between a poll that
// timed out and this call, and that block is still to be read.
func (s *Socket) Pending() bool {
	if s.ring == nil {
		return false
	}
	if s.Ready() {
		return true
	}
	// The kernel counts packets into the block header as it fills it, and
	// leaves the count when it hands the block over: read after the
	// status, a block retired in between still counts.
	b := s.nextBlock()
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&s.ring[b*s.bsize+bdNumPkts]))) > 0
}

// poll waits for a block or a socket error.
func (s *Socket) poll(ms int) error {
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN | unix.POLLERR}}
	n, err := unix.Poll(fds, ms)
	if err == unix.EINTR || (err == nil && n == 0) {
		return capture.ErrTimeout
	}
	if err != nil {
		return fmt.Errorf("capture point %s: poll: %w", s.point.Name, err)
	}
	if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		serr, gerr := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		cause := error(unix.Errno(serr))
		if gerr != nil {
			cause = gerr
		}
		why := "socket error"
		if serr == int(unix.ENETDOWN) {
			why = "interface went down or was deleted"
		}
		// The kernel retires the last partly filled block after the block
		// timeout; wait for it so frames seen before the loss still come out.
		time.Sleep(2 * ringBlockTimeout * time.Millisecond)
		s.lateErr = fmt.Errorf("capture point %s (%s ifindex %d in %s): %s: %w",
			s.point.Name, s.iface.Name, s.iface.IfIndex, s.point.Netns.Path, why, cause)
		return nil
	}
	return nil
}

// frame decodes the packet at s.pkt and advances.
func (s *Socket) frame() capture.RawFrame {
	h := s.ring[s.pkt:]
	snap := int(ne.Uint32(h[phSnaplen:]))
	wire := int(ne.Uint32(h[phLen:]))
	mac := int(ne.Uint16(h[phMac:]))
	status := ne.Uint32(h[phStatus:])
	data := h[mac : mac+snap]
	if status&unix.TP_STATUS_VLAN_VALID != 0 && len(data) >= 12 {
		// Put back the tag the kernel moved into metadata, as libpcap does, so
		// frames match tcpdump's and the tag is visible to the decoder.
		tpid := uint16(unix.ETH_P_8021Q)
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = ne.Uint16(h[phVlanTPID:])
		}
		tci := uint16(ne.Uint32(h[phVlanTCI:]))
		s.buf = append(s.buf[:0], data[:12]...)
		s.buf = binary.BigEndian.AppendUint16(s.buf, tpid)
		s.buf = binary.BigEndian.AppendUint16(s.buf, tci)
		s.buf = append(s.buf, data[12:]...)
		data = s.buf
		wire += 4
	}
	lt := s.iface.LinkType
	dir := correlate.DirIn
	if h[phSll+sllPkttype] == unix.PACKET_OUTGOING {
		dir = correlate.DirOut
	}
	s.num++
	rf := capture.RawFrame{
		Data:     data,
		Time:     int64(ne.Uint32(h[phSec:]))*1e9 + int64(ne.Uint32(h[phNsec:])),
		WireLen:  wire,
		LinkType: lt,
		Dir:      dir,
		Num:      s.num,
	}
	s.left--
	if next := ne.Uint32(h[phNext:]); next != 0 {
		s.pkt += int(next)
	}
	return rf
}

// Stats returns the kernel's counters since the socket was bound: packets
// that passed the filter (including the dropped ones) and drops because the
// ring was full.
func (s *Socket) Stats() (packets, drops uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.pkts, s.drops, nil
	}
	if err := s.readStatsLocked(); err != nil {
		return s.pkts, s.drops, fmt.Errorf("capture point %s: PACKET_STATISTICS: %w", s.point.Name, err)
	}
	return s.pkts, s.drops, nil
}

func (s *Socket) readStatsLocked() error {
	// Reading the counters resets them in the kernel: accumulate.
	st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return err
	}
	s.pkts += uint64(st.Packets)
	s.drops += uint64(st.Drops)
	return nil
}

// Close reads the final counters, unmaps the ring and closes the socket
// (which also drops the promiscuous membership). Frames still in the ring
// are discarded: drain with Next first.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.fd >= 0 {
		if s.ring != nil {
			_ = s.readStatsLocked()
		}
	}
	if s.ring != nil {
		if err := unix.Munmap(s.ring); err != nil {
			errs = append(errs, fmt.Errorf("munmap ring: %w", err))
		}
		s.ring = nil
	}
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close socket: %w", err))
		}
		s.fd = -1
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close capture point %s: %w", s.point.Name, err)
	}
	return nil
}
