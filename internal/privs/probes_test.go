package privs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/internal/safefile"
)

// The probes: each does what pathtrace does in that step, the way it does
// it, in the namespace and folders probeSetup made. They run in a process
// of their own as uid 65534.

func runProbe(arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	ns, dir := os.Getenv("PTS_PRIVS_NS"), os.Getenv("PTS_PRIVS_DIR")
	runtime.LockOSThread() // setns affects this thread: everything below runs on it
	switch Step(n) {
	case ListNamespaces:
		if _, err := os.ReadDir(filepath.Dir(ns)); err != nil {
			return err
		}
		f, err := os.Open(ns)
		if err == nil {
			f.Close()
		}
		return err
	case OtherProcessNS:
		f, err := os.Open("/proc/" + os.Getenv("PTS_PRIVS_ROOTPID") + "/ns/net")
		if err == nil {
			f.Close()
		}
		return err
	case EnterNamespace:
		return enter(ns)
	case PacketCapture:
		return closeFd(unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0))
	case Promiscuous:
		if err := enter(ns); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP,
			&unix.PacketMreq{Ifindex: 1, Type: unix.PACKET_MR_PROMISC})
	case SocketFilter:
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		accept := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff}}
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: 1, Filter: &accept[0]})
	case Probe:
		return closeFd(unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP))
	case Evidence:
		d, err := safefile.MkdirAll(filepath.Join(dir, "mine", "ev"), safefile.UserPolicy(false, ""))
		if err != nil {
			return err
		}
		defer d.Close()
		return d.WriteFile("report.json", []byte("{}"), false)
	case LabNamespaces:
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		return os.WriteFile(filepath.Join(dir, "root0755", "ns"), nil, 0o444) // as in /run/netns
	case LabLinks:
		h, err := netlink.NewHandleAt(openNS(ns))
		if err != nil {
			return err
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetAlias(lo, "pts-privs")
	case LabState:
		d, err := safefile.MkdirAll(filepath.Join(dir, "root0700"), safefile.SystemPolicy())
		if err != nil {
			return err
		}
		defer d.Close()
		return d.WriteFile("lab-pts.json", []byte("{}"), true)
	case DropReasons:
		return loadDropTracer()
	case DropLocation:
		return kallsymsAddress("_stext")
	case LabTunnel:
		return closeFd(unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_IPIP))
	}
	return fmt.Errorf("no probe for step %d", n)
}

func closeFd(fd int, err error) error {
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func openNS(path string) vnetns.NsHandle {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return vnetns.None()
	}
	return vnetns.NsHandle(fd)
}

func enter(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	return nil
}

// kallsymsAddress fails unless /proc/kallsyms shows sym's real address.
func kallsymsAddress(sym string) error {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasSuffix(s.Text(), " "+sym) {
			if strings.Trim(strings.Fields(s.Text())[0], "0") == "" {
				return errors.New("/proc/kallsyms hides addresses")
			}
			return nil
		}
	}
	return fmt.Errorf("%s not in /proc/kallsyms", sym)
}

// loadDropTracer creates a ring buffer, loads a raw tracepoint program
// writing 8 bytes to it and attaches it to kfree_skb - what a drop-reason
// watcher does - with bare bpf(2), then undoes it all.
func loadDropTracer() error {
	mapAttr := struct{ typ, key, value, entries, flags uint32 }{typ: 27 /* RINGBUF */, entries: 4096}
	mfd, err := bpf(0 /* MAP_CREATE */, unsafe.Pointer(&mapAttr), unsafe.Sizeof(mapAttr))
	if err != nil {
		return fmt.Errorf("create ring buffer: %w", err)
	}
	defer unix.Close(mfd)
	insn := func(code, dst, src uint8, off int16, imm int32) uint64 {
		return uint64(code) | uint64(dst|src<<4)<<8 | uint64(uint16(off))<<16 | uint64(uint32(imm))<<32
	}
	prog := []uint64{
		insn(0xb7, 1, 0, 0, 0),          // r1 = 0
		insn(0x7b, 10, 1, -8, 0),        // *(u64 *)(r10 - 8) = r1
		insn(0x18, 1, 1, 0, int32(mfd)), // r1 = the ring buffer (ld_imm64, pseudo map fd)
		0,
		insn(0xbf, 2, 10, 0, 0),  // r2 = r10
		insn(0x07, 2, 0, 0, -8),  // r2 += -8
		insn(0xb7, 3, 0, 0, 8),   // r3 = 8
		insn(0xb7, 4, 0, 0, 0),   // r4 = 0
		insn(0x85, 0, 0, 0, 130), // call bpf_ringbuf_output
		insn(0xb7, 0, 0, 0, 0),   // r0 = 0
		insn(0x95, 0, 0, 0, 0),   // exit
	}
	license := []byte("GPL\x00")
	progAttr := struct {
		typ, count  uint32
		insns, lic  uint64
		level, size uint32
		buf         uint64
	}{typ: 17 /* RAW_TRACEPOINT */, count: uint32(len(prog)),
		insns: uint64(uintptr(unsafe.Pointer(&prog[0]))), lic: uint64(uintptr(unsafe.Pointer(&license[0])))}
	pfd, err := bpf(5 /* PROG_LOAD */, unsafe.Pointer(&progAttr), unsafe.Sizeof(progAttr))
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	if err != nil {
		return fmt.Errorf("load program: %w", err)
	}
	defer unix.Close(pfd)
	name := []byte("kfree_skb\x00")
	rtAttr := struct {
		name uint64
		fd   uint32
		_    uint32
	}{name: uint64(uintptr(unsafe.Pointer(&name[0]))), fd: uint32(pfd)}
	lfd, err := bpf(17 /* RAW_TRACEPOINT_OPEN */, unsafe.Pointer(&rtAttr), unsafe.Sizeof(rtAttr))
	runtime.KeepAlive(name)
	if err != nil {
		return fmt.Errorf("attach to kfree_skb: %w", err)
	}
	unix.Close(lfd)
	return nil
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}
