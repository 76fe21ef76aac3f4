package kdrop

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
)

// Passive mode: the endpoints' own pings are matched by address; drops of
// other hosts' packets (pod3's ping to an address nobody holds) are not.
func TestPassiveAddrs(t *testing.T) {
	nstest.RequireRoot(t)
	l := nstest.UpLab(t, "ptdkp", 253)
	nstest.KeepRulesets(t, l.Namespaces()...)
	pod1, pod2, pod3 := l.Pods[0], l.Pods[1], l.Pods[2]
	w, err := Open(Match{Addrs: []netip.Addr{pod1.IP, pod2.IP}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	nstest.Nft(t, l.Node, "table bridge ptdguard {\n chain forward {\n  type filter hook forward priority 0;\n  icmp type echo-request counter drop\n }\n}\n")

	a := pod3.IP.As4()
	nobody := netip.AddrFrom4([4]byte{a[0], a[1], a[2], 200})
	done := make(chan struct{})
	go func() {
		defer close(done)
		nstest.ShErr(pod3.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", nobody.String())
	}()
	nstest.Sh(t, pod1.Name, "sh", "-c", "ping -c 3 -i 0.2 -W 1 "+pod2.IP.String()+" || true")
	<-done

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	node := nstest.Inode(t, l.NodePath)
	n := 0
	for {
		ev, err := w.Read(ctx)
		if err != nil {
			break
		}
		e, ok := parseEcho(ev.Packet)
		t.Logf("%s at %s: %+v", ev.ReasonName, ev.Symbol, e)
		if !ok || e.src != pod1.IP || e.dst != pod2.IP || e.typ != 8 {
			t.Errorf("unrelated drop matched: %s at %s, %+v", ev.ReasonName, ev.Symbol, e)
			continue
		}
		if ev.ReasonName != "NETFILTER_DROP" || ev.NetnsInode != node {
			t.Errorf("%s in netns %d, want NETFILTER_DROP in the node (%d)", ev.ReasonName, ev.NetnsInode, node)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d drops of pod1's pings, want 3", n)
	}
}
