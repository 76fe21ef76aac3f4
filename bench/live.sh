#!/usr/bin/env bash
# live.sh — issue #5, live: in the lab, with 1, 2, 4 parallel `ping -f` pod1 → pod2,
# capture at the five points for DURATION with `pathtrace --passive` and, in
# a second round at the same load, with five tcpdumps; report the frames per
# second seen at each point and the kernel drops of each. Also the arm time:
# from starting the command to all five points capturing.
#
# Usage: sudo bench/live.sh     (see bench/README.md)
#   BENCH_DIR=dir      (default /tmp/pathtrace-bench)   PARALLEL="1 2 4"
#   DURATION=5         capture seconds                  ARM_RUNS=5
#   TCPDUMP_BUFFER=32768  tcpdump -B (KiB), as in run.sh
#   PATHTRACE=bin      use this binary instead of building ./cmd/pathtrace
#
# Arm time: pathtrace prints none, so it is measured from just before exec to
# the JSON's live.started (stamped when every point is armed), idle, ARM_RUNS
# times; for tcpdump, from starting five tcpdumps to the last "listening on".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/pathtrace-bench}
PREFIX=ptbench- SUBNET=10.93.1.0/24
PARALLEL=${PARALLEL:-1 2 4}
DURATION=${DURATION:-5}
ARM_RUNS=${ARM_RUNS:-5}
TCPDUMP_BUFFER=${TCPDUMP_BUFFER:-32768}
POINTS=(pod1 pod1-veth cni0 pod2-veth pod2)

case $BENCH_DIR in "$ROOT" | "$ROOT"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2 ;; esac

PIDS=()
LAB_UP=0
log() { printf 'live: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if ((LAB_UP)); then "$PT" lab down --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null 2>&1 || log "lab down failed"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
for c in tcpdump jq go ping ip; do command -v "$c" >/dev/null || die "missing command $c"; done
[[ -x /usr/bin/time ]] || apt-get install -y -q time >/dev/null || die "apt-get install time failed"

WORK=$BENCH_DIR/live
mkdir -p "$BENCH_DIR/bin" "$WORK"
PT=${PATHTRACE:-$BENCH_DIR/bin/pathtrace}
if [[ -z ${PATHTRACE:-} ]]; then
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$PT" ./cmd/pathtrace) || die "build pathtrace"
fi

"$PT" lab down --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null 2>&1 || true
LAB_UP=1
"$PT" lab up --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null || die "lab up"
st=$("$PT" lab status --prefix "$PREFIX" --subnet "$SUBNET" --json) || die "lab status"
NODE=$(jq -r .node <<<"$st")
POD1=$(jq -r '.pods[0].name' <<<"$st") POD2=$(jq -r '.pods[1].name' <<<"$st")
V1=$(jq -r '.pods[0].host_veth' <<<"$st") V2=$(jq -r '.pods[1].host_veth' <<<"$st")
DST=$(jq -r '.pods[1].ip' <<<"$st")
ip netns exec "$POD1" ping -c 1 -W 1 "$DST" >/dev/null || die "pod1 cannot ping pod2"

now_ns() { date +%s%N; }

# pathtrace's JSON without its traces (a flood makes hundreds of MB of them).
strip_traces() { sed '/^  "traces": \[$/,/^  \],$/d'; }

# pings N: start N flood pings pod1 → pod2 that outlast a capture.
PING_PIDS=()
pings() {
	local i
	PING_PIDS=()
	for ((i = 0; i < $1; i++)); do
		ip netns exec "$POD1" ping -q -f -s 56 -w $((DURATION + 3)) "$DST" >"$WORK/ping$i.out" 2>&1 &
		PING_PIDS+=($!)
		PIDS+=($!)
	done
	sleep 0.5 # let them reach their rate
}
stop_pings() {
	local p
	for p in "${PING_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${PING_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PING_PIDS=()
}

tcpdump_at() { # name ns iface [args]
	local name=$1 ns=$2 ifc=$3
	shift 3
	ip netns exec "$ns" tcpdump --time-stamp-precision=nano -U -n -B "$TCPDUMP_BUFFER" -i "$ifc" -w "$WORK/$name.cap" "$@" 2>"$WORK/$name.err" &
	TD+=($!)
	PIDS+=($!)
}

OUT=$BENCH_DIR/live-results.tsv
printf 'capturer\tpings\tpoint\tframes\tframes_s\tkernel_drops\tpeak_rss_mib\n' >"$OUT"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $PARALLEL; do
	# pathtrace
	log "$n flood ping(s): pathtrace --passive --duration ${DURATION}s"
	pings "$n"
	rc=0
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$PT" --src "$POD1" --dst "$POD2" --passive --duration "${DURATION}s" -q -f json \
		2>"$WORK/pt.err" | strip_traces >"$WORK/pt-$n.json" || rc=$?
	stop_pings
	((rc <= 1)) || die "pathtrace failed ($rc): $(tail -3 "$WORK/pt.err")"
	read -r _ kb < <(tail -1 "$WORK/time")
	s0=$(date -d "$(jq -r .live.started "$WORK/pt-$n.json")" +%s%N)
	s1=$(date -d "$(jq -r .live.ended "$WORK/pt-$n.json")" +%s%N)
	span=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
	jq -r --arg n "$n" --arg span "$span" --arg kb "$kb" '.points[] | ["pathtrace", $n, .name, .coverage.frames,
		((.coverage.frames / ($span | tonumber)) | floor), (.coverage.kernel_drops // "null"), (($kb | tonumber) / 1024 * 10 | floor / 10)] | @tsv' \
		"$WORK/pt-$n.json" >>"$OUT"

	# five tcpdumps at the same load
	log "$n flood ping(s): five tcpdumps for ${DURATION}s"
	pings "$n"
	TD=()
	tcpdump_at pod1 "$POD1" eth0 -p
	tcpdump_at pod1-veth "$NODE" "$V1" -p
	tcpdump_at cni0 "$NODE" cni0
	tcpdump_at pod2-veth "$NODE" "$V2" -p
	tcpdump_at pod2 "$POD2" eth0 -p
	sleep "$DURATION"
	for p in "${TD[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${TD[@]}"; do wait "$p" 2>/dev/null || true; done
	stop_pings
	for name in "${POINTS[@]}"; do
		awk -v OFS='\t' -v n="$n" -v name="$name" -v d="$DURATION" '
			/packets? captured/ {c = $1} /packets? dropped by kernel/ {k = $1}
			END {print "tcpdump", n, name, c, int(c / d), k, "-"}' "$WORK/$name.err" >>"$OUT"
		rm -f "$WORK/$name.cap"
	done
done

# arm time, idle: pathtrace start → all points armed (live.started)
ARM=$BENCH_DIR/live-arm.txt
: >"$ARM"
for ((r = 1; r <= ARM_RUNS; r++)); do
	t0=$(now_ns)
	"$PT" --src "$POD1" --dst "$POD2" --passive --duration 100ms -q -f json 2>/dev/null | strip_traces >"$WORK/arm.json" || true
	started=$(jq -r .live.started "$WORK/arm.json")
	ts=$(date -d "$started" +%s%N)
	echo "pathtrace start→armed run $r: $(((ts - t0) / 1000000)) ms" >>"$ARM"
done
for ((r = 1; r <= ARM_RUNS; r++)); do
	TD=()
	t0=$(now_ns)
	tcpdump_at pod1 "$POD1" eth0 -p
	tcpdump_at pod1-veth "$NODE" "$V1" -p
	tcpdump_at cni0 "$NODE" cni0
	tcpdump_at pod2-veth "$NODE" "$V2" -p
	tcpdump_at pod2 "$POD2" eth0 -p
	for ((j = 0; j < 1000; j++)); do
		ok=1
		for name in "${POINTS[@]}"; do grep -q 'listening on' "$WORK/$name.err" || ok=0; done
		((ok)) && break
		sleep 0.005
	done
	t1=$(now_ns)
	for p in "${TD[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${TD[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "5 tcpdumps start→all listening run $r: $(((t1 - t0) / 1000000)) ms" >>"$ARM"
	rm -f "$WORK"/*.cap
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "# live: $(nproc) cores, load average before/after: $LOAD_BEFORE / $LOAD_AFTER; ${DURATION}s per capture; tcpdump -B $TCPDUMP_BUFFER; flood pings pod1 → pod2 ($DST)"
	column -t -s $'\t' "$OUT"
	echo
	cat "$ARM"
} | tee "$BENCH_DIR/live-report.txt"
