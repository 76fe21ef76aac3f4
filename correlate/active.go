package correlate

import (
	"encoding/binary"
	"net/netip"
)

// activeTable maps a key hash to the newest active trace whose key hashes
// there (the head of its chain). Open addressing with linear probing over
// a power-of-two array: the key is a hash already, so a multiply places
// it, and a lookup usually reads one slot. A Go map hashed it again and
// probed its groups, per frame and twice per trace; this is what a flood's
// matching spends least on.
type activeTable struct {
	slots []activeSlot
	n     int
	shift uint // 64 - log2(len(slots))
	// peak is the most entries held since the last shrinkEvery
	// deletions (dels).
	peak, dels int
}

// shrinkEvery is how many deletions pass between checks whether the table
// is far larger than its recent peak needs: a table sized for a burst
// long past spreads the few traces left over memory the cache drops,
// while resizing on every swing of a flood's load costs more than it saves.
const shrinkEvery = 1 << 16

type activeSlot struct {
	kh uint64
	t  *trace // nil: empty
}

func (a *activeTable) home(kh uint64) int { return int((kh * 0x9e3779b97f4a7c15) >> a.shift) }

// get is the head of kh's chain, nil if none.
func (a *activeTable) get(kh uint64) *trace {
	if a.n == 0 {
		return nil
	}
	mask := len(a.slots) - 1
	for i := a.home(kh); ; i = (i + 1) & mask {
		s := &a.slots[i]
		if s.t == nil {
			return nil
		}
		if s.kh == kh {
			return s.t
		}
	}
}

// set makes t the head of kh's chain.
func (a *activeTable) set(kh uint64, t *trace) {
	if 2*(a.n+1) > len(a.slots) {
		a.resize(max(64, 2*len(a.slots)))
	}
	mask := len(a.slots) - 1
	for i := a.home(kh); ; i = (i + 1) & mask {
		s := &a.slots[i]
		if s.t == nil {
			*s = activeSlot{kh, t}
			a.n++
			a.peak = max(a.peak, a.n)
			return
		}
		if s.kh == kh {
			s.t = t
			return
		}
	}
}

// del removes kh's chain; the slots after it move back so that every
// probe still finds its key before an empty slot.
func (a *activeTable) del(kh uint64) {
	if a.n == 0 {
		return
	}
	mask := len(a.slots) - 1
	i := a.home(kh)
	for ; a.slots[i].kh != kh || a.slots[i].t == nil; i = (i + 1) & mask {
		if a.slots[i].t == nil {
			return
		}
	}
	a.n--
	for j := (i + 1) & mask; a.slots[j].t != nil; j = (j + 1) & mask {
		// Slot j may move to the hole at i when its home is not in (i, j]
		// (cyclically): its probe passes i first.
		if h := a.home(a.slots[j].kh); (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			a.slots[i] = a.slots[j]
			i = j
		}
	}
	a.slots[i] = activeSlot{}
	if a.dels++; a.dels >= shrinkEvery {
		// Room for four times the peak: under a quarter full.
		if size := max(64, 1<<bitsLen(4*a.peak-1)); size < len(a.slots) {
			a.resize(size)
		}
		a.dels, a.peak = 0, a.n
	}
}

func (a *activeTable) resize(size int) {
	old := a.slots
	a.slots = make([]activeSlot, size)
	a.shift = uint(64 - bitsLen(size-1))
	a.n = 0
	for _, s := range old {
		if s.t != nil {
			a.set(s.kh, s.t)
		}
	}
}

// bitsLen is the number of bits needed for v.
func bitsLen(v int) int {
	n := 0
	for ; v > 0; v >>= 1 {
		n++
	}
	return n
}

// keyHash mixes a Key into 64 bits. The active map is keyed by it rather
// than by the Key itself: hashing a uint64 is far cheaper than an 80-byte
// struct with address pointers, and chains compare full keys anyway.
func keyHash(k *Key) uint64 {
	h := uint64(k.Proto)<<8 | uint64(k.Kind)
	h = mixHash(h, uint64(k.Seq)<<32|uint64(k.Ack))
	h = mixHash(h, uint64(k.IPID)<<32|uint64(k.Len))
	h = mixHash(h, k.Hash)
	h = mixHash(h, uint64(binary.BigEndian.Uint32(k.MAC[:4]))<<16|uint64(binary.BigEndian.Uint16(k.MAC[4:])))
	// Each address apart: ranging over an array of the two copied both,
	// a third of the hash's cost, though most keys have none.
	if k.Addr1.IsValid() {
		h = mixAddr(h, k.Addr1)
	}
	if k.Addr2.IsValid() {
		h = mixAddr(h, k.Addr2)
	}
	return h
}

// mixHash folds v into the hash h.
func mixHash(h, v uint64) uint64 {
	h ^= v
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// mixAddr folds an address's 16 bytes into the hash h.
func mixAddr(h uint64, a netip.Addr) uint64 {
	b := a.As16()
	h = mixHash(h, binary.BigEndian.Uint64(b[:8]))
	return mixHash(h, binary.BigEndian.Uint64(b[8:]))
}
