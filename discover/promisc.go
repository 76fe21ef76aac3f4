package discover

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"

	"github.com/pathtrace/pathtrace/capture/nftrace"
	"github.com/pathtrace/pathtrace/netns"
)

// A bridge sees frames bridged between two of its ports only in
// promiscuous mode. But on a node whose bridge passes frames to iptables
// (br_netfilter, bridge-nf-call-iptables) and which rewrites destinations
// in prerouting (kube-proxy's DNAT of Service addresses), a promiscuous
// bridge also hands the rewritten frame up to the node, which routes it to
// the pod again: the pod gets its Service traffic twice for as long as the
// capture runs (seen on this kernel with kube-proxy's nftables rules). On
// such a node pathtrace captures the bridge without promiscuous mode and
// says so: the bridge then sees the frames to and from the node itself
// (routed, broadcast), not those bridged between pods, and the correlator
// does not count those as gaps there.

// bridgeModes sets Promisc on every bridge point where it is safe, and
// notes the ones where it is not.
func bridgeModes(p *Path) {
	checked := map[uint64]string{} // netns inode → why not promiscuous ("" when safe)
	for i := range p.Points {
		pt := &p.Points[i]
		if pt.Role != RoleBridge {
			continue
		}
		why, ok := checked[pt.Inode]
		if !ok {
			why = promiscHazard(pt.NetnsPath)
			checked[pt.Inode] = why
		}
		pt.Promisc = why == ""
		if why != "" {
			p.Notes = append(p.Notes, fmt.Sprintf("%s captured without promiscuous mode: %s, so a promiscuous bridge would make the node deliver rewritten frames twice; frames bridged between its ports are not seen there (not a gap)", pt.Name, why))
		}
	}
}

// promiscHazard says why a bridge in the namespace at path must not be
// made promiscuous, or "" when it may. Anything it cannot read counts as
// safe: the lab and plain bridges have no DNAT.
func promiscHazard(path string) string {
	h, err := netns.Open(path)
	if err != nil {
		return ""
	}
	defer h.Close()
	var brnf bool
	var dnat []string
	_ = netns.Do(h, func() error {
		// /proc/sys/net is the opening thread's namespace's.
		b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
		brnf = err == nil && strings.TrimSpace(string(b)) == "1"
		return nil
	})
	if !brnf {
		return ""
	}
	c, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		return ""
	}
	chains, err := c.ListChains()
	if err != nil {
		return ""
	}
	for _, ch := range chains {
		if ch.Type == nftables.ChainTypeNAT && ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPrerouting && ch.Table != nil {
			dnat = append(dnat, nftrace.Family(ch.Table.Family).String()+" "+ch.Table.Name+" "+ch.Name)
		}
	}
	if len(dnat) == 0 {
		return ""
	}
	return fmt.Sprintf("its node passes bridged frames to iptables (bridge-nf-call-iptables) and rewrites destinations in prerouting (nat chains %s)", strings.Join(dnat, ", "))
}
