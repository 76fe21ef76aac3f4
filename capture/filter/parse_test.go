package filter

import (
	"errors"
	"strings"
	"testing"
)

// TestCanonical checks precedence, qualifier inheritance and the meaning
// given to each form through the canonical String.
func TestCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// and/or: equal precedence, left to right.
		{"tcp or udp and icmp", "(tcp or udp) and icmp"},
		{"tcp and udp or icmp", "(tcp and udp) or icmp"},
		{"tcp and (udp or icmp)", "tcp and (udp or icmp)"},
		{"tcp && udp || icmp", "(tcp and udp) or icmp"},
		{"not tcp and udp", "not tcp and udp"},
		{"! (tcp or udp)", "not (tcp or udp)"},
		{"not not arp", "not not arp"},
		// Qualifier inheritance.
		{"host 10.0.0.1 or 10.0.0.2", "host 10.0.0.1 or host 10.0.0.2"},
		{"port 53 or 80", "port 53 or port 80"},
		{"tcp dst port 80 or 443 or 8080", "tcp dst port 80 or tcp dst port 443 or tcp dst port 8080"},
		{"not host 10.0.0.1 and 10.0.0.2", "not host 10.0.0.1 and host 10.0.0.2"},
		{"host 10.0.0.1 and not 10.0.0.2", "host 10.0.0.1 and not host 10.0.0.2"},
		{"host 10.0.0.1 and (10.0.0.2 or 10.0.0.3)", "host 10.0.0.1 and (host 10.0.0.2 or host 10.0.0.3)"},
		{"host (10.0.0.1 or 10.0.0.2)", "host 10.0.0.1 or host 10.0.0.2"},
		{"host 10.0.0.1 and (not 10.0.0.2 or 10.0.0.3)", "host 10.0.0.1 and (not host 10.0.0.2 or host 10.0.0.3)"},
		{"host 10.0.0.1 or (tcp) or 10.0.0.2", "host 10.0.0.1 or tcp or host 10.0.0.2"},
		{"ip proto 1 or 17", "ip proto 1 or ip proto 17"},
		{"src 10.0.0.1 or 10.0.0.2", "src host 10.0.0.1 or src host 10.0.0.2"},
		// Addresses and networks as libpcap reads them.
		{"host 10.1", "net 10.1.0.0/16"},
		{"net 10", "net 10.0.0.0/8"},
		{"net 10.1.2.3", "host 10.1.2.3"},
		{"host 167772161", "host 10.0.0.1"},
		{"net 172.16.0.0 mask 255.240.0.0", "net 172.16.0.0/12"},
		{"dst net 10.0.0.0 mask 255.0.255.0", "dst net 10.0.0.0 mask 255.0.255.0"},
		{"net 0.0.0.0/0", "net 0.0.0.0/0"},
		{"src or dst net 2001:db8::/32", "src or dst net 2001:db8::/32"},
		{"ip6 host fe80::1", "ip6 host fe80::1"},
		{"arp src and dst host 10.0.0.1", "arp src and dst host 10.0.0.1"},
		{"ether src 00-11-22-33-44-55", "ether src host 00:11:22:33:44:55"},
		{"ether host 0011.2233.4455", "ether host 00:11:22:33:44:55"},
		{"ether dst 001122334455", "ether dst host 00:11:22:33:44:55"},
		{"ether host 0:1:2:3:4:5", "ether host 00:01:02:03:04:05"},
		// Ports.
		{"port 0x50", "port 80"},
		{"port 010", "port 8"},
		{"portrange 2000-1000", "portrange 1000-2000"},
		{"portrange 80", "port 80"},
		{"udp portrange 1-1024", "udp portrange 1-1024"},
		{"port domain", "port 53"},
		{"port http", "tcp port 80"},
		// Protocols.
		{"proto \\tcp", "proto 6"},
		{"ip6 proto 58", "ip6 proto 58"},
		{"ether proto \\arp", "ether proto 0x0806"},
		{"link proto 0x86dd", "ether proto 0x86dd"},
		{"icmp6 or igmp or sctp", "icmp6 or igmp or sctp"},
		// Special primitives.
		{"vlan", "vlan"},
		{"vlan 100 and vlan (200)", "vlan 100 and vlan 200"},
		{"broadcast", "ether broadcast"},
		{"ip multicast", "ip multicast"},
		{"greater 100 and less 200", "greater 100 and less 200"},
		{"", ""},
		{"  ", ""},
	} {
		f, err := Compile(c.in)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.in, err)
			continue
		}
		if got := f.String(); got != c.want {
			t.Errorf("Compile(%q).String() = %q, want %q", c.in, got, c.want)
		}
		g, err := Compile(f.String())
		if err != nil {
			t.Errorf("Compile(%q) (the canonical form of %q): %v", f.String(), c.in, err)
		} else if g.String() != f.String() {
			t.Errorf("canonical form not stable: %q -> %q", f.String(), g.String())
		}
		if f.Expr() != c.in {
			t.Errorf("Expr() = %q, want %q", f.Expr(), c.in)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		in    string
		kind  ErrorKind
		token string
		col   int
		msg   string // a substring of the message
	}{
		{"host 10.0.0.1 foo", ErrSyntax, "foo", 15, `unexpected "foo"`},
		{"host 10.0.0.1 and", ErrSyntax, "", 18, "unexpected end of expression"},
		{"(tcp or udp", ErrSyntax, "", 12, "unexpected end"},
		{"tcp or udp)", ErrSyntax, ")", 11, `unexpected ")"`},
		{"tcp or 80", ErrSyntax, "80", 8, "no qualifier to inherit"},
		{"(host 10.0.0.1) or 10.0.0.2", ErrSyntax, "10.0.0.2", 20, "no qualifier to inherit"},
		{"10.0.0.1", ErrSyntax, "10.0.0.1", 1, "unexpected"},
		{"host", ErrSyntax, "", 5, "unexpected end"},
		{"not", ErrSyntax, "", 4, "unexpected end"},
		{"host 10.0.0.1 # comment", ErrSyntax, "#", 15, "unexpected character"},
		{"ether host 00:11:22:33:44:55:", ErrSyntax, "00:11:22:33:44:55:", 12, "bogus ethernet address"},
		{"port 080", ErrSyntax, "080", 6, "non-octal digit"},
		{"port 99999999999", ErrSyntax, "99999999999", 6, "overflows 32 bits"},
		{"port 70000", ErrInvalid, "70000", 6, "illegal port number 70000 > 65535"},
		{"ip6 host 10.0.0.1", ErrInvalid, "10.0.0.1", 10, "'ip6' modifier applied to ip host"},
		{"ip host ::1", ErrInvalid, "::1", 9, "'ip' modifier applied to ip6 host"},
		{"tcp host 10.0.0.1", ErrInvalid, "10.0.0.1", 10, "'tcp' modifier applied to host"},
		{"icmp port 80", ErrInvalid, "80", 11, "illegal qualifier of 'port'"},
		{"udp port http", ErrInvalid, "http", 10, "port 'http' is tcp"},
		{"port nosuchservice", ErrInvalid, "nosuchservice", 6, "unknown port"},
		{"net 10.0.0.1/8", ErrInvalid, "10.0.0.1", 5, "non-network bits"},
		{"host 10.0.0.0/8", ErrInvalid, "10.0.0.0", 6, "networks only"},
		{"net 10.0.0.0/33", ErrInvalid, "33", 14, "mask length"},
		{"host 300.1.1.1", ErrInvalid, "300.1.1.1", 6, "invalid IPv4 address"},
		{"host 2001:db8::/32", ErrInvalid, "2001:db8::", 6, "networks only"},
		{"port 10.0.0.1", ErrInvalid, "10.0.0.1", 6, "'port' applied to an IPv4 address"},
		{"host 001122334455", ErrInvalid, "001122334455", 6, "ethernet address used in non-ether expression"},
		{"ether host 10.0.0.1", ErrInvalid, "10.0.0.1", 12, "illegal link layer address"},
		{"src proto 6", ErrSyntax, "proto", 5, "unexpected"},
		{"ip src proto 6", ErrSyntax, "proto", 8, "unexpected"},
		{"arp proto 6", ErrInvalid, "6", 11, "does not encapsulate"},
		{"vlan 5000", ErrInvalid, "5000", 6, "VLAN tag 5000"},
		{"ether", ErrSyntax, "ether", 1, "needs a qualifier"},
		{"tcp[13] & 2 != 0", ErrUnsupported, "tcp", 1, "packet data access"},
		{"len > 100", ErrUnsupported, "len", 1, "arithmetic"},
		{"1 = 1", ErrUnsupported, "=", 3, "arithmetic"},
		{"host example.com", ErrUnsupported, "example.com", 6, "host names are not resolved"},
		{"net localnet", ErrUnsupported, "localnet", 5, "network names"},
		{"ether host myhost", ErrUnsupported, "myhost", 12, "ethernet host names"},
		{"mpls 100", ErrUnsupported, "mpls", 1, "not supported"},
		{"inbound", ErrUnsupported, "inbound", 1, "not supported"},
		{"geneve", ErrUnsupported, "geneve", 1, "not supported"},
		{"decnet host 10.5", ErrUnsupported, "decnet", 1, "protocol \"decnet\" is not supported"},
		{"ip6 protochain 6", ErrUnsupported, "protochain", 5, "not supported"},
		{"gateway router", ErrUnsupported, "gateway", 1, "not supported"},
		{"host 10.0.0.1 and ééé", ErrSyntax, "é", 19, "unexpected character"},
		{strings.Repeat("(", 2000) + "tcp" + strings.Repeat(")", 2000), ErrInvalid, "(", 1001, "nested"},
	} {
		_, err := Compile(c.in)
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Compile(%q) = %v, want an *Error", c.in, err)
			continue
		}
		if fe.Kind != c.kind || fe.Token != c.token || fe.Column != c.col || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("Compile(%q): kind %v token %q column %d msg %q; want %v %q %d %q",
				c.in, fe.Kind, fe.Token, fe.Column, fe.Msg, c.kind, c.token, c.col, c.msg)
		}
		if s := err.Error(); strings.Contains(s, "\n") || !strings.HasPrefix(s, "filter: ") {
			t.Errorf("Error() is not one line starting with \"filter: \": %q", s)
		}
	}
	_, err := Compile("host 10.0.0.1 foo")
	if want := `filter: unexpected "foo" at column 15 in "host 10.0.0.1 foo"`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

// TestAcceptsAsTcpdump asks tcpdump itself whether each expression
// compiles: this filter must accept what tcpdump accepts (unless it says
// "unsupported") and refuse what tcpdump refuses.
func TestAcceptsAsTcpdump(t *testing.T) {
	tcpdump := needTcpdump(t)
	file := "testdata/veth.pcap"
	exprs := []string{
		"tcp or 80", "(host 1.1.1.1) or 2.2.2.2", "host 1.1.1.1 or (tcp) or 2.2.2.2",
		"host 1.1.1.1 and (not 2.2.2.2)", "host 1.1.1.1 and not 2.2.2.2", "host 1.1.1.1 and ((2.2.2.2))",
		"host (1.1.1.1 or 2.2.2.2)", "10.0.0.1", "src 10.0.0.0/8", "host 10.1", "vlan 100 or 200",
		"port 53 or 80 and tcp", "ip6 host 10.0.0.1", "host fe80::1", "ether host 001122334455",
		"port 001122334455", "port 080", "portrange 80-90x", "tcp port domain", "udp port http", "not", "host",
		"ip and", "ip6 proto 58", "proto tcp", "ip proto 1 or 17", "(not 2.2.2.2)", "tcp and (not 2.2.2.2)",
		"host 1.1.1.1 and (not 2.2.2.2 or tcp)", "host 1.1.1.1 and (not tcp or 2.2.2.2)",
		"host 1.1.1.1 and (not not 2.2.2.2)", "host 1.1.1.1 and not (tcp or udp)", "host 1.1.1.1 and (2.2.2.2 or tcp)",
		"host 1.1.1.1 and (80 or 3.3.3.3)", "port 1 and (80 or 3.3.3.3)", "host 1.1.1.1 or not not 2.2.2.2",
		"src or dst host 1.1.1.1", "src and dst port 1", "dst or src 1.1.1.1", "src or 1.1.1.1", "ether src",
		"ether proto 6", "ip proto 300", "port 65536", "portrange 1-70000", "net 10.0.0.0/8 or 11", "net 10 or 11",
		"host 10.0.0.1 and port 80 or 443", "not host 1.1.1.1 and 2.2.2.2", "net ::/0", "net ::1/129",
		"ip6 net 2001:db8::/32 or 2001:db9::/32", "vlan and vlan and vlan", "greater", "less 10 or 20",
		"broadcast or multicast", "ip6 broadcast", "tcp multicast", "ip proto \\icmp", "ip6 proto \\ipv6-icmp",
		"ether proto \\ip", "ether proto \\foo", "arp net 10.0.0.0/8", "rarp host 10.0.0.1", "arp host ::1",
		"ether host 1:2:3:4:5:6 or 1:2:3:4:5:7", "ether src and dst 1:2:3:4:5:6", "ether net 1:2:3:4:5:6",
		"tcp src port 22 and dst portrange 1024-65535", "icmp or icmp6", "icmp6 host ::1", "( tcp )", "()",
		"tcp and", "and tcp", "not not not tcp", "port 22 or not 23", "net 10.0.0.0 mask 255.0.0.0 or 11.0.0.0",
		"net 10.0.0.0 mask 255.0.0.255", "host ::ffff:10.0.0.1", "host 1::2::3", "udp and port (53)",
		"vlan (100)", "vlan 100 200", "tcp port 80 443",
	}
	for _, e := range exprs {
		_, _, tdErr := tcpdumpFrames(tcpdump, file, e)
		_, err := Compile(e)
		var fe *Error
		switch {
		case err == nil && tdErr != nil:
			t.Errorf("%q: accepted, tcpdump refuses it: %v", e, tdErr)
		case err != nil && tdErr == nil && !(errors.As(err, &fe) && fe.Kind == ErrUnsupported):
			t.Errorf("%q: refused (%v), tcpdump accepts it", e, err)
		}
	}
}
