package pipeline

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/netns"
)

// nsNames names namespaces by inode: the path's own labels, then
// /run/netns, then the host's.
type nsNames struct {
	labels map[uint64]string
	paths  map[uint64]string
	ifs    map[[2]uint64]string // (inode, ifindex) → the path's interface names
}

func newNSNames(path *discover.Path) *nsNames {
	n := &nsNames{labels: map[uint64]string{}, paths: map[uint64]string{}, ifs: map[[2]uint64]string{}}
	for _, p := range path.Points {
		n.labels[p.Inode], n.paths[p.Inode] = p.Netns, p.NetnsPath
		n.ifs[[2]uint64{p.Inode, uint64(p.IfIndex)}] = p.Interface
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			h, err := netns.Open("/run/netns/" + e.Name())
			if err != nil {
				continue
			}
			if _, ok := n.labels[h.Inode]; !ok {
				n.labels[h.Inode], n.paths[h.Inode] = e.Name(), h.Path
			}
			h.Close()
		}
	}
	if h, err := netns.Open("/proc/1/ns/net"); err == nil {
		if _, ok := n.labels[h.Inode]; !ok {
			n.labels[h.Inode], n.paths[h.Inode] = "host", h.Path
		}
		h.Close()
	}
	return n
}

// name sets each drop's namespace and interface names.
func (n *nsNames) name(drops []dropRecord) {
	for i := range drops {
		d := &drops[i]
		d.Netns = n.labels[d.inode]
		if d.Netns == "" {
			d.Netns = fmt.Sprint(d.inode)
		}
		if d.ifindex > 0 {
			d.Interface = n.ifname(d.inode, d.ifindex)
		}
	}
}

// ifname names an interface of a namespace: the path's own, else asked of
// the namespace, else "ifindex N".
func (n *nsNames) ifname(inode uint64, ifindex int) string {
	k := [2]uint64{inode, uint64(ifindex)}
	if s, ok := n.ifs[k]; ok {
		return s
	}
	s := fmt.Sprintf("ifindex %d", ifindex)
	if p := n.paths[inode]; p != "" {
		if name, err := linkName(p, ifindex); err == nil {
			s = name
		}
	}
	n.ifs[k] = s
	return s
}

// linkName asks a namespace for an interface's name.
func linkName(nsPath string, ifindex int) (string, error) {
	h, err := netns.Open(nsPath)
	if err != nil {
		return "", err
	}
	defer h.Close()
	var name string
	err = netns.Do(h, func() error {
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return err
		}
		name = l.Attrs().Name
		return nil
	})
	return name, err
}
