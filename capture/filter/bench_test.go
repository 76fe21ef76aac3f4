package filter

import "testing"

// benchFilters are what users type: one host, a service, a mix.
var benchFilters = []struct{ name, expr string }{
	{"host", "host 10.244.2.3"},
	{"port", "tcp port 80 or udp port 53"},
	{"mixed", "(host 10.244.1.2 or net 10.96.0.0/12) and not (port 22 or arp) and greater 60"},
	{"vlan", "vlan 100 and vlan 200 and icmp"},
}

func BenchmarkMatch(b *testing.B) {
	outer := ipv4Fields(nodeA, nodeB, 17, 51000, 4789)
	inner := ipv4Fields(podA, podB, 6, 40000, 443)
	for _, bf := range benchFilters {
		f := mustCompile(b, bf.expr)
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.Match(&outer, &inner)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(benchFilters[2].expr); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMatchAllocs: matching allocates nothing, whatever the filter.
func TestMatchAllocs(t *testing.T) {
	views := fuzzViews()
	exprs := append([]string{}, commonExprs...)
	for _, bf := range benchFilters {
		exprs = append(exprs, bf.expr)
	}
	for _, e := range exprs {
		f := mustCompile(t, e)
		if n := testing.AllocsPerRun(100, func() {
			f.Match(&views[0], &views[1])
			f.Match(&views[2])
			f.Match(&views[3], nil)
		}); n != 0 {
			t.Errorf("%q: %v allocations per Match", e, n)
		}
	}
}
