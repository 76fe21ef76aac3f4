package nftrace

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pathtrace/pathtrace/capture/internal/nstest"
	"github.com/pathtrace/pathtrace/netns"
)

// The renderer against nft itself: rules added with nft, read back through
// netlink and rendered, must read as `nft -a -s list ruleset` prints them.
func TestRenderMatchesNft(t *testing.T) {
	nstest.RequireRoot(t)
	ns := tempNS(t, "ptdnr")
	rules := `
table bridge ptdb {
	chain forward {
		type filter hook forward priority 0;
		icmp type echo-request counter drop
		ether saddr 02:00:00:00:00:01 ip daddr 10.9.8.7 drop
	}
}
table inet ptdi {
	chain input {
		type filter hook input priority 0;
		icmp type echo-request counter drop
		ip saddr 10.0.0.0/8 tcp dport { 22, 80 } ct state established,related accept comment "hello"
		iifname "eth0" ip6 daddr fd00::/64 udp dport 53 limit rate 10/second counter reject
		meta mark 0x00000002 log prefix "ptd " drop
		tcp dport 1000-2000 drop
		tcp dport 25 counter reject with tcp reset
		icmpv6 type echo-request counter drop
		ip saddr { 10.1.0.0/16, 192.168.1.1 } drop
		meta l4proto udp counter jump ptdc
	}
	chain ptdc {
		ct state new counter drop
	}
}
table ip ptd4 {
	chain output {
		type filter hook output priority 0;
		ip daddr 10.1.2.3 icmp type echo-request counter drop
		ip protocol tcp drop
	}
}
`
	nstest.Nft(t, ns.name, rules)
	nstest.Iptables(t, ns.name, "-A", "INPUT", "-p", "icmp", "--icmp-type", "echo-request", "-m", "comment", "--comment", "ptd guard", "-j", "DROP")
	nstest.Iptables(t, ns.name, "-A", "INPUT", "-s", "10.1.2.3", "-p", "tcp", "--dport", "80", "-m", "conntrack", "--ctstate", "NEW", "-j", "REJECT")

	listing := nstest.Sh(t, ns.name, "nft", "-a", "-s", "list", "ruleset")
	n := 0
	for _, l := range parseListing(listing) {
		got, err := ReadRule(ns.h, l.fam, l.table, l.chain, l.handle)
		if err != nil {
			t.Errorf("%s: %v", l.text, err)
			continue
		}
		n++
		want := l.text
		if l.table == "filter" {
			// nft's libxtables translation drops iptables' comment
			// match; the renderer keeps it.
			got = strings.Replace(got, ` comment "ptd guard"`, "", 1)
		}
		if got != want {
			t.Errorf("%s %s %s handle %d:\n got %s\nwant %s", l.fam, l.table, l.chain, l.handle, got, want)
		}
	}
	if n != 16 {
		t.Errorf("compared %d rules, want 16:\n%s", n, listing)
	}
}

type listedRule struct {
	fam          Family
	table, chain string
	handle       uint64
	text         string
}

var (
	tableLine  = regexp.MustCompile(`^table (\w+) (\S+) \{`)
	chainLine  = regexp.MustCompile(`^\s*chain (\S+) \{`)
	ruleHandle = regexp.MustCompile(`^\s*(.*?) # handle (\d+)$`)
)

// parseListing reads `nft -a list ruleset`: each rule with its place.
func parseListing(s string) []listedRule {
	fams := map[string]Family{"ip": FamilyIPv4, "ip6": FamilyIPv6, "inet": FamilyInet, "bridge": FamilyBridge, "arp": FamilyARP, "netdev": FamilyNetdev}
	var out []listedRule
	var cur listedRule
	for _, line := range strings.Split(s, "\n") {
		if m := tableLine.FindStringSubmatch(line); m != nil {
			cur.fam, cur.table = fams[m[1]], m[2]
			continue
		}
		if m := chainLine.FindStringSubmatch(line); m != nil {
			cur.chain = m[1]
			continue
		}
		if strings.Contains(line, "type filter hook") || strings.HasPrefix(strings.TrimSpace(line), "policy") {
			continue
		}
		if m := ruleHandle.FindStringSubmatch(line); m != nil && cur.chain != "" {
			h, _ := strconv.ParseUint(m[2], 10, 64)
			r := cur
			r.handle = h
			// nft leaves a double space where it prints nothing for a
			// match (iptables' comment).
			r.text = strings.Join(strings.Fields(m[1]), " ")
			out = append(out, r)
		}
	}
	return out
}

type testNS struct {
	name string
	h    *netns.Handle
}

// tempNS makes an empty named namespace, removed at cleanup.
func tempNS(t *testing.T, prefix string) testNS {
	t.Helper()
	name := prefix + strconv.Itoa(os.Getpid())
	nstest.Sh(t, "", "ip", "netns", "add", name)
	t.Cleanup(func() { nstest.ShErr("", "ip", "netns", "del", name) })
	h, err := netns.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return testNS{name, h}
}
