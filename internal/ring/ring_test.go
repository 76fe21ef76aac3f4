package ring

import (
	"math/rand/v2"
	"testing"
)

func TestFIFOAcrossGrowthAndWrap(t *testing.T) {
	var r Ring[int]
	next, want := 0, 0
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 100_000; step++ {
		if rng.IntN(3) > 0 || r.Len() == 0 {
			r.Push(next)
			next++
			continue
		}
		if got := r.Pop(); got != want {
			t.Fatalf("step %d: popped %d, want %d", step, got, want)
		}
		want++
	}
	for i := 0; i < r.Len(); i++ {
		if got := *r.At(i); got != want+i {
			t.Fatalf("At(%d) = %d, want %d", i, got, want+i)
		}
	}
}

func TestPopClearsSlot(t *testing.T) {
	var r Ring[*int]
	v := 1
	r.Push(&v)
	r.Pop()
	if r.items[0] != nil {
		t.Fatal("popped slot still holds its pointer")
	}
}

func TestSteadyStateAllocatesNothing(t *testing.T) {
	var r Ring[[64]byte]
	for range 100 {
		r.PushZero()
	}
	allocs := testing.AllocsPerRun(1000, func() {
		r.PushZero()
		r.Pop()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per push/pop", allocs)
	}
}
