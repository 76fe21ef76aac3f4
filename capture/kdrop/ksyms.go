package kdrop

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Symbols maps kernel text addresses to "function+0xoff" from
// /proc/kallsyms. The kernel shows all addresses as zero to readers without
// CAP_SYSLOG (kernel.kptr_restrict): then Load returns ErrSymbolsHidden.
type Symbols struct {
	addrs []uint64
	names []string // "name" or "name [module]"
}

// ErrSymbolsHidden: /proc/kallsyms is readable but every address is zero.
var ErrSymbolsHidden = errors.New("/proc/kallsyms shows no addresses (needs CAP_SYSLOG, or kernel.kptr_restrict=0)")

// LoadSymbols reads /proc/kallsyms.
func LoadSymbols() (*Symbols, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	return ParseSymbols(f)
}

// ParseSymbols reads kallsyms-formatted text ("addr type name [module]");
// only text symbols are kept, since drop locations are code addresses.
func ParseSymbols(r io.Reader) (*Symbols, error) {
	type sym struct {
		addr uint64
		name string
	}
	var syms []sym
	nonzero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || len(f[1]) != 1 || !strings.ContainsAny(f[1], "tTwW") {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		nonzero = nonzero || addr != 0
		name := f[2]
		if len(f) > 3 {
			name += " " + f[3]
		}
		syms = append(syms, sym{addr, name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	if !nonzero {
		return nil, ErrSymbolsHidden
	}
	// Stable: of several names at one address the first listed wins.
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	s := &Symbols{addrs: make([]uint64, 0, len(syms)), names: make([]string, 0, len(syms))}
	for i, y := range syms {
		if i > 0 && y.addr == syms[i-1].addr {
			continue
		}
		s.addrs = append(s.addrs, y.addr)
		s.names = append(s.names, y.name)
	}
	return s, nil
}

// Lookup returns "name+0xoff" (with " [module]" for module code) for addr,
// or "" when addr lies below the first symbol.
func (s *Symbols) Lookup(addr uint64) string {
	if s == nil || addr == 0 {
		return ""
	}
	i := sort.Search(len(s.addrs), func(i int) bool { return s.addrs[i] > addr }) - 1
	if i < 0 {
		return ""
	}
	name, mod, _ := strings.Cut(s.names[i], " ")
	out := fmt.Sprintf("%s+%#x", name, addr-s.addrs[i])
	if mod != "" {
		out += " " + mod
	}
	return out
}
