#!/usr/bin/env bash
# instr.sh — instructions per frame of `pathtrace analyze` (table and
# -f json) under cachegrind with GOMAXPROCS=1: a count that does not move
# with this VM's neighbours (one build varies < 0.3% run to run, where its
# wall and CPU time vary ±25%), for before/after comparisons of a change too
# small to show in run.sh's timings. It is not time: memory stalls (the L1
# and last-level misses are printed beside it) and the second core's
# parallelism are not in it. With GOMAXPROCS > 1 the scheduler's spinning
# adds ~10% noise to the count.
#
# Usage: bench/instr.sh SETDIR BIN [BIN...]   e.g. bench/instr.sh /tmp/pathtrace-bench/set1x ./old ./new
# Needs valgrind (apt: valgrind). SETDIR holds the five point files (run.sh's
# sets: pod1.cap ... pod2.cap, and "frames"). Each analysis of the 2 M-frame
# set takes ~1.5 min; a binary's table and JSON runs go in parallel.
set -euo pipefail
(($# >= 2)) || { echo "usage: $0 SETDIR BIN [BIN...]" >&2; exit 2; }
set=$1
shift
command -v valgrind >/dev/null || { echo "instr.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
files=()
for f in pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap; do files+=("$set/$f"); done
frames=$(cat "$set/frames")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# one BIN FORMAT: instructions, L1 and last-level data misses of one analysis.
one() {
	local out=$work/$2.err rc=0
	GOMAXPROCS=1 valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
		"$1" analyze -q -f "$2" "${files[@]}" >/dev/null 2>"$out" || rc=$?
	# analyze exits 1 when it reports findings; more is a failure.
	((rc <= 1)) || { echo "$1 analyze -f $2 failed ($rc): $(tail -3 "$out")" >&2; return 1; }
	awk -v bin="$1" -v fmt="$2" -v frames="$frames" '
		/I +refs:/ {gsub(",", "", $NF); ir = $NF}
		/D1 +misses:/ {gsub(",", "", $4); d1 = $4}
		/LL misses:/ {gsub(",", "", $4); ll = $4}
		END {if (ir == "") {print bin ": no cachegrind summary" > "/dev/stderr"; exit 1}
			printf "%-40s %-6s %15.0f instr %7.0f /frame %7.1f L1 misses /frame %6.3f LL misses /frame\n", bin, fmt, ir, ir / frames, d1 / frames, ll / frames}' "$out"
}
printf '# %s: %s frames; cachegrind, GOMAXPROCS=1\n' "$set" "$frames"
for bin; do
	one "$bin" table >"$work/t" &
	one "$bin" json >"$work/j" &
	wait
	cat "$work/t" "$work/j"
done
