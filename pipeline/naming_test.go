package pipeline

import "testing"

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
