package pipeline

import (
	"slices"
	"testing"
)

func TestPointBaseName(t *testing.T) {
	for in, want := range map[string]string{
		"pod1-veth.cap":       "pod1-veth",
		"/tmp/x.pcapng.gz":    "x",
		"dir/cni0.pcap":       "cni0",
		"a.b.pcapng":          "a.b",
		"host.PCAP":           "host",
		"noext":               "noext",
		".pcap":               ".pcap",
		"pod2.eth0.pcap.gz":   "pod2.eth0",
		"capture.tar":         "capture.tar",
		"/x/y/pod1-eth0.dump": "pod1-eth0",
	} {
		if got := PointBaseName(in); got != want {
			t.Errorf("PointBaseName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShortNames(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}, []string{"pod1", "pod1-veth", "cni0", "pod2-veth", "pod2"}},
		{[]string{"netenv__calico__node1__vmk1-tcpdump", "netenv__calico__node2__vmk2-tcpdump"}, []string{"node1__vmk1", "node2__vmk2"}},
		{[]string{"incident-4711_node1-pod1", "incident-4711_node1-pod2"}, []string{"pod1", "pod2"}},
		{[]string{"a.x.cap", "a.x.cap2"}, []string{"a.x.cap", "a.x.cap2"}},
		{[]string{"x-1", "x-1-2"}, []string{"x-1", "x-1-2"}},
		{[]string{"only"}, []string{"only"}},
		{[]string{"same-prefix-a-end", "same-prefix-b-end", "same-prefix-c-end"}, []string{"a", "b", "c"}},
	} {
		if got := shortNames(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("shortNames(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
