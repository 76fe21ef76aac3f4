// Package kdrop watches the kernel's skb:kfree_skb tracepoint with an eBPF
// program and reports the dropped packets of one pathtrace run: why the
// kernel dropped each (enum skb_drop_reason, named from the running
// kernel's BTF), where (kernel function+offset), in which network namespace
// and on which device, with the packet's headers so the caller can key it
// like a captured frame. The program (kdrop.bpf.c) keeps only packets that
// match the run, so the unrelated drops a busy host has all the time never
// leave the kernel.
package kdrop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("drop watcher closed")

// Watcher is an attached drop watcher. Read is for one goroutine; Close
// may be called from another.
type Watcher struct {
	objs    kdropObjects
	link    link.Link
	rd      *ringbuf.Reader
	reasons *Reasons
	clock   clock
	notes   []string
	// /proc/kallsyms takes ~200 ms to read: it is read beside the capture
	// getting ready, and only drops wait for it.
	syms     *Symbols
	symsNote string
	symsDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open checks that this kernel can say why it drops packets, loads the
// program configured for m and attaches it to skb:kfree_skb. An
// *UnavailableError says in one line what is missing.
func Open(m Match) (*Watcher, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, &UnavailableError{What: "no kernel BTF (/sys/kernel/btf/vmlinux; needs CONFIG_DEBUG_INFO_BTF)", Err: err}
	}
	if err := checkTracepoint(kernel); err != nil {
		return nil, err
	}
	reasons, err := ReasonsFromBTF(kernel)
	if err != nil {
		return nil, &UnavailableError{What: "kernel BTF lists no enum skb_drop_reason", Err: err}
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}

	spec, err := loadKdrop()
	if err != nil {
		return nil, fmt.Errorf("drop watcher: %w", err)
	}
	tai := features.HaveProgramHelper(ebpf.Kprobe, asm.FnKtimeGetTaiNs) == nil
	if err := configure(spec, m, tai); err != nil {
		return nil, fmt.Errorf("drop watcher: %w", err)
	}
	w := &Watcher{reasons: reasons}
	if w.clock, err = newClock(tai); err != nil {
		return nil, fmt.Errorf("drop watcher: %w", err)
	}
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}}
	if err := spec.LoadAndAssign(&w.objs, opts); err != nil {
		return nil, loadError(err)
	}
	for _, a := range m.Addrs {
		if err := w.objs.Addrs.Put(addrKey(a), uint8(1)); err != nil {
			w.objs.Close()
			return nil, fmt.Errorf("drop watcher: add address %s: %w", a, err)
		}
	}
	w.link, err = link.AttachTracing(link.TracingOptions{Program: w.objs.KdropKfreeSkb, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		w.objs.Close()
		return nil, &UnavailableError{What: "cannot attach to the skb:kfree_skb tracepoint: " + firstLine(err), Err: err}
	}
	w.rd, err = ringbuf.NewReader(w.objs.Events)
	if err != nil {
		w.link.Close()
		w.objs.Close()
		return nil, fmt.Errorf("drop watcher: open ring buffer: %w", err)
	}
	w.symsDone = make(chan struct{})
	go func() {
		defer close(w.symsDone)
		syms, err := LoadSymbols()
		if err != nil {
			w.symsNote = fmt.Sprintf("drop locations are kernel addresses, not function names: %v", err)
		}
		w.syms = syms
	}()
	if !tai {
		w.notes = append(w.notes, "drop times from CLOCK_MONOTONIC converted to wall time at read (no bpf_ktime_get_tai_ns): may be off by clock adjustments")
	}
	return w, nil
}

// checkTracepoint: skb:kfree_skb must carry the reason (Linux 5.17+); its
// BTF prototype is (void *, struct sk_buff *, void *location, enum
// skb_drop_reason, ...).
func checkTracepoint(kernel *btf.Spec) error {
	var td *btf.Typedef
	if err := kernel.TypeByName("btf_trace_kfree_skb", &td); err != nil {
		return &UnavailableError{What: "kernel BTF has no skb:kfree_skb tracepoint", Err: err}
	}
	ptr, ok := td.Type.(*btf.Pointer)
	var proto *btf.FuncProto
	if ok {
		proto, ok = ptr.Target.(*btf.FuncProto)
	}
	if !ok || len(proto.Params) < 4 {
		return &UnavailableError{What: "skb:kfree_skb has no drop reason on this kernel (needs Linux 5.17 or later)"}
	}
	if e, ok := btf.UnderlyingType(proto.Params[3].Type).(*btf.Enum); !ok || e.Name != "skb_drop_reason" {
		return &UnavailableError{What: "skb:kfree_skb's third argument is not enum skb_drop_reason on this kernel"}
	}
	return nil
}

// checkCaps: loading a tracing program needs CAP_BPF + CAP_PERFMON (or
// CAP_SYS_ADMIN).
func checkCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop watcher: read capabilities: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	return &UnavailableError{What: "missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"}
}

func configure(spec *ebpf.CollectionSpec, m Match, tai bool) error {
	var payload [MaxPayload]byte
	copy(payload[:], m.Payload)
	b := func(v bool) uint8 {
		if v {
			return 1
		}
		return 0
	}
	set := map[string]any{
		kdropVarCfgHasId:      b(m.HasEchoID),
		kdropVarCfgIdHi:       uint8(m.EchoID >> 8),
		kdropVarCfgIdLo:       uint8(m.EchoID),
		kdropVarCfgPayloadLen: uint8(len(m.Payload)),
		kdropVarCfgPayload:    payload,
		kdropVarCfgHasAddrs:   b(len(m.Addrs) > 0),
		kdropVarCfgUseTai:     b(tai),
	}
	for name, v := range set {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("eBPF object lacks variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

func loadError(err error) error {
	if errors.Is(err, unix.EPERM) {
		return &UnavailableError{What: "not permitted to load eBPF (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)", Err: err}
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return &UnavailableError{What: "the kernel's verifier rejected the drop program: " + firstLine(err), Err: err}
	}
	return &UnavailableError{What: "cannot load the drop program: " + firstLine(err), Err: err}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// Notes are one-line remarks on reduced output (no symbol names, an
// approximate clock), for the caller to print once.
func (w *Watcher) Notes() []string {
	<-w.symsDone
	if w.symsNote != "" {
		return append([]string{w.symsNote}, w.notes...)
	}
	return w.notes
}

// Reasons is the running kernel's reason table.
func (w *Watcher) Reasons() *Reasons { return w.reasons }

// Read waits for the next matched drop until ctx ends. After Close it
// returns ErrClosed.
func (w *Watcher) Read(ctx context.Context) (Event, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		// A short deadline, so a cancelled ctx is noticed promptly.
		w.rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
		rec, err := w.rd.Read()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed):
			return Event{}, ErrClosed
		case err != nil:
			return Event{}, fmt.Errorf("read drop events: %w", err)
		}
		raw, err := parseRecord(rec.RawSample)
		if err != nil {
			return Event{}, err
		}
		return w.event(raw), nil
	}
}

func (w *Watcher) event(r rawEvent) Event {
	<-w.symsDone
	return Event{
		Time:        w.clock.realtime(r.ktime),
		Reason:      Reason(r.reason),
		ReasonName:  w.reasons.Name(Reason(r.reason)),
		Location:    r.location,
		Symbol:      w.syms.Lookup(r.location),
		NetnsInode:  r.netns,
		Ifindex:     int(r.ifindex),
		L3Proto:     r.proto,
		Packet:      r.data,
		InnerOffset: int(r.inner),
		SkbLen:      r.skbLen,
		Skb:         r.skb,
	}
}

// Lost counts matched drops that were not reported: the ring buffer was
// full, or the program could not run because it was already running on
// that CPU (a drop inside the program's own path).
func (w *Watcher) Lost() uint64 {
	var n uint64
	var per []uint64
	if err := w.objs.Lost.Lookup(uint32(0), &per); err == nil {
		for _, v := range per {
			n += v
		}
	}
	if st, err := w.objs.KdropKfreeSkb.Stats(); err == nil {
		n += st.RecursionMisses
	}
	return n
}

// Close detaches the program and frees its maps; a blocked Read returns
// ErrClosed.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		errs := []error{w.link.Close(), w.rd.Close(), w.objs.Close()}
		if err := errors.Join(errs...); err != nil {
			w.closeErr = fmt.Errorf("close drop watcher: %w", err)
		}
	})
	return w.closeErr
}
