package correlate

import "testing"

// TestTypeNames: the ICMP errors that explain a path are named as people
// say them; what has no name says its numbers.
func TestTypeNames(t *testing.T) {
	for _, c := range []struct {
		k    Key
		want string
	}{
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 3<<8 | 3}, "icmp-port-unreachable"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 3<<8 | 4}, "icmp-frag-needed"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 3<<8 | 13}, "icmp-admin-prohibited"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 3<<8 | 9}, "icmp-unreachable-9"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 11 << 8}, "icmp-time-exceeded"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMP, Seq: 42<<8 | 1}, "icmp-type-42-code-1"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMPv6, Seq: 2 << 8}, "icmpv6-packet-too-big"},
		{Key{Proto: ProtoIP, Kind: ipProtoICMPv6, Seq: 1<<8 | 4}, "icmpv6-port-unreachable"},
		{Key{Proto: ProtoIP, Kind: ipProtoIGMP}, "igmp"},
		{Key{Proto: ProtoIP, Kind: 47}, "proto-47"},
	} {
		if got := typeName(c.k); got != c.want {
			t.Errorf("typeName(%+v) = %q, want %q", c.k, got, c.want)
		}
	}
}
