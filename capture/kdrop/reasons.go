package kdrop

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// Reason is the kernel's enum skb_drop_reason value as the tracepoint gives
// it: the high 16 bits name a subsystem (enum skb_drop_reason_subsys; 0 is
// the core list), the low bits the reason within it.
type Reason uint32

const reasonSubsysShift = 16

// Subsystem is the reason's subsystem number (0: core).
func (r Reason) Subsystem() uint16 { return uint16(r >> reasonSubsysShift) }

// Reasons names drop reasons from the running kernel's BTF, never from a
// table copied from one kernel version: the values move between releases.
type Reasons struct {
	core   map[Reason]string
	subsys map[uint16]string // subsystem number -> its name, e.g. OPENVSWITCH
	spec   *btf.Spec

	otherOnce sync.Once
	other     map[Reason]string // subsystem reasons found in *_drop_reason enums
}

// ReasonsFromBTF reads enum skb_drop_reason (prefix SKB_DROP_REASON_ or SKB_
// stripped), enum skb_drop_reason_subsys and any other "*_drop_reason" enum
// whose values carry a subsystem (openvswitch's, mac80211's, when their BTF
// is in spec).
func ReasonsFromBTF(spec *btf.Spec) (*Reasons, error) {
	var core *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &core); err != nil {
		return nil, fmt.Errorf("enum skb_drop_reason in kernel BTF: %w", err)
	}
	r := &Reasons{core: map[Reason]string{}, subsys: map[uint16]string{}, spec: spec}
	for _, v := range core.Values {
		name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
		name = strings.TrimPrefix(name, "SKB_")
		if _, dup := r.core[Reason(v.Value)]; !dup {
			r.core[Reason(v.Value)] = name
		}
	}
	var sub *btf.Enum
	if err := spec.TypeByName("skb_drop_reason_subsys", &sub); err == nil {
		for _, v := range sub.Values {
			r.subsys[uint16(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_SUBSYS_")
		}
	} else if !errors.Is(err, btf.ErrNotFound) {
		return nil, fmt.Errorf("enum skb_drop_reason_subsys in kernel BTF: %w", err)
	}
	return r, nil
}

// Name is the reason's name: "NETFILTER_DROP"; for a subsystem's reason
// its enum name ("OVS_DROP_LAST_ACTION") or "SUBSYS:0xcode"; a value this
// kernel does not list is given as a number.
func (r *Reasons) Name(v Reason) string {
	if r != nil {
		if v.Subsystem() == 0 {
			if n, ok := r.core[v]; ok {
				return n
			}
		} else if n, ok := r.subsystemReasons()[v]; ok {
			return n
		} else if s, ok := r.subsys[v.Subsystem()]; ok {
			return fmt.Sprintf("%s:%#x", s, uint32(v)&0xffff)
		}
	}
	return fmt.Sprintf("reason %d", uint32(v))
}

// subsystemReasons walks the BTF for the "*_drop_reason" enums once, when
// the first subsystem reason shows up (rare; the walk decodes every type).
func (r *Reasons) subsystemReasons() map[Reason]string {
	r.otherOnce.Do(func() {
		r.other = map[Reason]string{}
		if r.spec == nil {
			return
		}
		for typ, err := range r.spec.All() {
			if err != nil {
				return
			}
			e, ok := typ.(*btf.Enum)
			if !ok || e.Name == "skb_drop_reason" || !strings.HasSuffix(e.Name, "_drop_reason") {
				continue
			}
			for _, v := range e.Values {
				if Reason(v.Value).Subsystem() != 0 {
					r.other[Reason(v.Value)] = v.Name
				}
			}
		}
	})
	return r.other
}

// Len is how many core reasons the kernel lists (without NOT_DROPPED_YET,
// CONSUMED and the MAX/SUBSYS_MASK markers).
func (r *Reasons) Len() int {
	n := 0
	for _, name := range r.core {
		switch name {
		case "NOT_DROPPED_YET", "CONSUMED", "MAX", "SUBSYS_MASK":
		default:
			n++
		}
	}
	return n
}
