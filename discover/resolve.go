package discover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pathtrace/pathtrace/netns"
)

// Resolver turns what the user typed into an Endpoint.
type Resolver interface {
	Resolve(arg string) (Endpoint, error)
}

// Namer is a Resolver that knows better names for the namespaces it
// resolved (pods, the node's own) than /run/netns and /proc give; see
// NetnsNames.
type Namer interface {
	NetnsNames() map[uint64]string
}

// NodeNamer is a Resolver that knows the cluster's nodes by address (a
// path that crosses into another node's namespace, visible here, is named
// after that node); see NodeNames.
type NodeNamer interface {
	NodeNames() map[netip.Addr]string
}

// ErrNoMatch is wrapped by Resolve when an argument matches no namespace
// (an IP that is on no namespace of this node may still be a destination
// that leaves the node: see Remote).
var ErrNoMatch = errors.New("no network namespace matches")

// ErrAmbiguous is wrapped by Resolve when an IP is in several namespaces.
var ErrAmbiguous = errors.New("several network namespaces match")

// NewResolver accepts a netns name (as in /run/netns), a namespace path, a
// PID, or an IP address searched in every namespace on the node.
func NewResolver() Resolver { return &resolver{runDir: "/run/netns", procDir: "/proc"} }

type resolver struct{ runDir, procDir string }

// HowToGive ends an error about an endpoint that matched nothing: the forms
// an endpoint takes.
const HowToGive = "an endpoint is a netns name, a namespace path, a PID or an IP address"

// Remote is a destination outside this node: Discover follows the path up
// to the node's egress interface.
func Remote(ip netip.Addr) Endpoint { return Endpoint{Arg: ip.String(), Label: ip.String(), IP: ip} }

func (r *resolver) Resolve(arg string) (Endpoint, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return Endpoint{}, errors.New("empty endpoint: " + HowToGive)
	}
	if ip, err := netip.ParseAddr(arg); err == nil {
		return r.byIP(arg, ip.Unmap())
	}
	var path string
	switch {
	case strings.Contains(arg, "/"):
		path = arg
	case isPID(arg):
		path = filepath.Join(r.procDir, arg, "ns/net")
		if _, err := os.Stat(filepath.Join(r.procDir, arg)); err != nil {
			return Endpoint{}, r.noMatch(arg, "no process "+arg)
		}
	default:
		path = filepath.Join(r.runDir, arg)
		if _, err := os.Stat(path); err != nil {
			return Endpoint{}, r.noMatch(arg, "") // "no /run/netns/NAME" says nothing more
		}
	}
	ns, err := netns.Open(path)
	if err != nil {
		return Endpoint{}, r.noMatch(arg, err.Error())
	}
	defer ns.Close()
	ep := Endpoint{Arg: arg, NetnsPath: path, Inode: ns.Inode, Label: arg}
	if name := r.nameOf(ns.Inode); name != "" {
		ep.Label = name
	}
	h, err := handleAt(ns)
	if err != nil {
		return ep, err
	}
	defer h.Close()
	link, err := mainLink(h)
	if err != nil {
		return ep, fmt.Errorf("endpoint %s: %w", arg, err)
	}
	fillLink(h, &ep, link)
	return ep, nil
}

// InNamespace is the endpoint in the namespace at path that holds ip (its
// interface, MAC); without a valid ip, the namespace's main interface and
// its first IPv4 address. Label is the namespace's path until the caller
// names it.
func InNamespace(path string, ip netip.Addr) (Endpoint, error) {
	h, inode, err := openHandle(path)
	if err != nil {
		return Endpoint{}, err
	}
	h.Close()
	c := candidate{label: path, path: path, inode: inode}
	if !ip.IsValid() {
		ep, err := NewResolver().Resolve(path)
		return ep, err
	}
	ep, ok, _, err := findIP(c, ip.Unmap())
	if err != nil {
		return Endpoint{}, fmt.Errorf("addresses in %s: %w", path, err)
	}
	if !ok {
		return Endpoint{}, fmt.Errorf("%w: no interface in %s holds %s", ErrNoMatch, path, ip)
	}
	return ep, nil
}

func isPID(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0
}

// nameOf returns the name under runDir of the namespace with this inode.
func (r *resolver) nameOf(inode uint64) string {
	entries, _ := os.ReadDir(r.runDir)
	for _, e := range entries {
		if ino, err := nsInode(filepath.Join(r.runDir, e.Name())); err == nil && ino == inode {
			return e.Name()
		}
	}
	return ""
}

// mainLink is the interface carrying the default route, else the only
// non-loopback interface.
func mainLink(h *netlink.Handle) (netlink.Link, error) {
	var routes []netlink.Route
	err := retryDump(func() (err error) {
		routes, err = h.RouteList(nil, netlink.FAMILY_V4)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && r.LinkIndex > 0 {
			return h.LinkByIndex(r.LinkIndex)
		}
	}
	l, names, err := onlyLink(h, func(l netlink.Link) bool { return l.Attrs().Flags&net.FlagLoopback == 0 })
	if err != nil || l == nil {
		return nil, fmt.Errorf("no default route and %d non-loopback interfaces %v: give the pod's IP instead", len(names), names)
	}
	return l, nil
}

// onlyLink is the one link keep accepts (nil if not exactly one), and the
// names of all it accepts.
func onlyLink(h *netlink.Handle, keep func(netlink.Link) bool) (netlink.Link, []string, error) {
	var links []netlink.Link
	if err := retryDump(func() (err error) { links, err = h.LinkList(); return err }); err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	var found []netlink.Link
	var names []string
	for _, l := range links {
		if keep(l) {
			found = append(found, l)
			names = append(names, l.Attrs().Name)
		}
	}
	if len(found) != 1 {
		return nil, names, nil
	}
	return found[0], names, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// fillLink sets the interface fields of ep, and IP to the first IPv4
// address of the link if ep has none.
func fillLink(h *netlink.Handle, ep *Endpoint, link netlink.Link) {
	ep.Interface, ep.IfIndex = link.Attrs().Name, link.Attrs().Index
	ep.MAC = MAC(link.Attrs().HardwareAddr)
	if ep.IP.IsValid() {
		return
	}
	if addrs, err := h.AddrList(link, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
		ep.IP, _ = netip.AddrFromSlice(addrs[0].IP.To4())
	}
}

func (r *resolver) byIP(arg string, ip netip.Addr) (Endpoint, error) {
	cands, err := candidates(r.runDir, r.procDir)
	if err != nil {
		return Endpoint{}, err
	}
	var found []Endpoint
	var near []held // addresses seen, for the closest ones if none matches
	for _, c := range cands {
		ep, ok, addrs, err := findIP(c, ip)
		if err != nil {
			continue // a process may exit while we look: skip its namespace
		}
		if ok {
			ep.Arg = arg
			found = append(found, ep)
		}
		for _, a := range addrs {
			near = append(near, held{c.label, a})
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Endpoint{}, fmt.Errorf("%w %s: none of the %d namespaces on this node holds it%s (ip netns list); %s",
			ErrNoMatch, arg, len(cands), closestAddrs(ip, near, 3), HowToGive)
	}
	var where []string
	for _, ep := range found {
		where = append(where, fmt.Sprintf("%s (%s, %s)", ep.Label, ep.NetnsPath, ep.Interface))
	}
	return Endpoint{}, fmt.Errorf("%w %s: %s; %s", ErrAmbiguous, arg, strings.Join(where, ", "), HowToGive)
}

// findIP looks for ip in the namespace c; it also returns every address
// of ip's family there.
func findIP(c candidate, ip netip.Addr) (Endpoint, bool, []netip.Addr, error) {
	h, _, err := openHandle(c.path)
	if err != nil {
		return Endpoint{}, false, nil, err
	}
	defer h.Close()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	var addrs []netlink.Addr
	if err := retryDump(func() (err error) { addrs, err = h.AddrList(nil, family); return err }); err != nil {
		return Endpoint{}, false, nil, err
	}
	var all []netip.Addr
	for _, a := range addrs {
		got, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		all = append(all, got.Unmap())
		if got.Unmap() == ip {
			link, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return Endpoint{}, false, nil, err
			}
			ep := Endpoint{Label: c.label, NetnsPath: c.path, Inode: c.inode, IP: ip}
			fillLink(h, &ep, link)
			return ep, true, nil, nil
		}
	}
	return Endpoint{}, false, all, nil
}

// noMatch says that arg matched nothing (why: what was looked for), how
// many namespaces the node has and the named ones closest to arg.
func (r *resolver) noMatch(arg, why string) error {
	if why != "" {
		why = ": " + why
	}
	cands, cerr := candidates(r.runDir, r.procDir)
	if cerr != nil {
		return fmt.Errorf("%w %s%s; %s", ErrNoMatch, arg, why, HowToGive)
	}
	return fmt.Errorf("%w %s%s; %s; %s", ErrNoMatch, arg, why, closestNames(arg, cands, 3), HowToGive)
}

// candidate is one network namespace on the node.
type candidate struct {
	label string // name under /run/netns, "root", or "pid N"
	path  string
	inode uint64
}

// candidates lists every namespace reachable on the node: the named ones
// and those of running processes, one entry per namespace (by inode).
func candidates(runDir, procDir string) ([]candidate, error) {
	var out []candidate
	seen := map[uint64]bool{}
	entries, err := os.ReadDir(runDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", runDir, err)
	}
	for _, e := range entries {
		p := filepath.Join(runDir, e.Name())
		ino, err := nsInode(p)
		if err != nil || seen[ino] {
			continue
		}
		seen[ino] = true
		out = append(out, candidate{label: e.Name(), path: p, inode: ino})
	}
	rootIno, _ := nsInode(filepath.Join(procDir, "1/ns/net"))
	procs, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", procDir, err)
	}
	var pids []int
	for _, e := range procs {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		p := filepath.Join(procDir, strconv.Itoa(pid), "ns/net")
		ino, err := nsInode(p)
		if err != nil || seen[ino] {
			continue
		}
		seen[ino] = true
		label := "pid " + strconv.Itoa(pid)
		if ino == rootIno {
			label = "root"
		}
		out = append(out, candidate{label: label, path: p, inode: ino})
	}
	return out, nil
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0 {
		// An empty file under /run/netns whose namespace was never mounted.
		var fs unix.Statfs_t
		if err := unix.Statfs(path, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
			return 0, fmt.Errorf("%s is not a network namespace", path)
		}
	}
	return st.Ino, nil
}

// openHandle opens a netlink handle inside the namespace at path and returns
// it with the namespace's inode. The handle's sockets stay in that namespace;
// the namespace file itself is closed again.
func openHandle(path string) (*netlink.Handle, uint64, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer ns.Close()
	h, err := handleAt(ns)
	if err != nil {
		return nil, 0, err
	}
	return h, ns.Inode, nil
}

func handleAt(ns *netns.Handle) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(vnetns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", ns.Path, err)
	}
	return h, nil
}

// retryDump repeats a netlink dump the kernel interrupted because the
// table changed under it.
func retryDump(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}
