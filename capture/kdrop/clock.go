package kdrop

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// clock converts the program's stamps to CLOCK_REALTIME.
//
// With bpf_ktime_get_tai_ns (Linux 5.19+) the stamp is CLOCK_TAI, which the
// kernel keeps at CLOCK_REALTIME + the TAI offset (whole seconds, from
// adjtimex) in the same timekeeper, so subtracting that offset is exact: the
// same clock AF_PACKET stamps (ktime_get_real) read. Without it the stamp is
// CLOCK_MONOTONIC and the REALTIME-MONOTONIC offset is sampled at each
// conversion: exact to a few hundred ns unless the clock is stepped or
// slewed between the drop and its conversion.
type clock struct {
	tai       bool
	taiOffset int64 // ns
}

func newClock(tai bool) (clock, error) {
	c := clock{tai: tai}
	if tai {
		var tx unix.Timex
		if _, err := unix.Adjtimex(&tx); err != nil {
			return c, fmt.Errorf("read the TAI offset (adjtimex): %w", err)
		}
		c.taiOffset = int64(tx.Tai) * 1e9
	}
	return c, nil
}

func (c clock) realtime(stamp uint64) int64 {
	if c.tai {
		return int64(stamp) - c.taiOffset
	}
	var before, mono, after unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &before)
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_REALTIME, &after)
	real := (before.Nano() + after.Nano()) / 2
	return int64(stamp) + real - mono.Nano()
}
