#!/usr/bin/env bash
# live.sh — issues #5 and #15, live: in the lab, offer the path pod1 → pod2
# loads (default: four parallel `ping -f`; or a ladder of paced rates from
# bench/load) and at each load capture the five points for DURATION with
# `pathtrace --passive -f json` (correlating and writing every trace; also
# variants: a 1 GiB spool, --out DIR) and with five tcpdumps, REPEAT times
# interleaved. For each run: the rate the points saw (frames/s, all five
# together), every point's kernel drops, CPU per captured frame and peak RSS;
# then medians per capturer and load, pathtrace's CPU per frame against the
# tcpdumps', and the issue-15 targets met or not. Also the arm time: from
# starting the command to all five points capturing.
#
# Usage: sudo bench/live.sh     (see bench/README.md)
#   BENCH_DIR=dir      (default /tmp/pathtrace-bench)
#   LOADS="flood4"     rate x streams (echo requests/s, parallel senders) or floodN
#                      (N parallel ping -f), e.g. the old ladder:
#                      "10000x1 25000x1 50000x2 75000x2 100000x2 100000x4 150000x4 200000x4 flood1 flood2 flood4"
#   CAPTURERS="pathtrace tcpdump"  also: pathtrace-spool1g, pathtrace-out, pathtrace-ringN (--ring-size N MiB)
#   REPEAT=5           runs per capturer and load, interleaved; medians reported
#   FORMAT=json        pathtrace's output (json: every trace written, to a file in /dev/shm)
#   DURATION=5         capture seconds                  ARM_RUNS=5
#   TCPDUMP_BUFFER=32768  tcpdump -B (KiB)
#   PATHTRACE=bin      use this binary instead of building ./cmd/pathtrace
#   BASELINE=bin       with capturer "baseline" in CAPTURERS: this (earlier) build, run as
#                      "pathtrace" is, interleaved: before/after at the same load
#
# A paced sender offers every capturer the same load, where a flood ping's
# rate depends on the CPU the capturer leaves it; on 2 cores neither reaches
# its asked rate at the top of the ladder, so the table shows what the points
# actually saw: frames captured (drops excluded) over the capture's span
# (pathtrace: its coverage; tcpdump: first to last frame, capinfos).
#
# Arm time: pathtrace prints none, so it is measured from just before exec to
# the JSON's live.started (stamped when every point is armed), idle, ARM_RUNS
# times; for tcpdump, from starting five tcpdumps to the last "listening on".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/pathtrace-bench}
PREFIX=ptbench- SUBNET=10.93.1.0/24
LOADS=${LOADS:-flood4}
CAPTURERS=${CAPTURERS:-pathtrace tcpdump}
REPEAT=${REPEAT:-5}
FORMAT=${FORMAT:-json}
DURATION=${DURATION:-5}
ARM_RUNS=${ARM_RUNS:-5}
TCPDUMP_BUFFER=${TCPDUMP_BUFFER:-32768}
BASELINE=${BASELINE:-}
POINTS=(pod1 pod1-veth cni0 pod2-veth pod2)

case $BENCH_DIR in "$ROOT" | "$ROOT"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2 ;; esac

PIDS=()
LAB_UP=0
log() { printf 'live: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ " $CAPTURERS " != *" baseline "* || -x $BASELINE ]] || die "capturer baseline needs BASELINE=<an executable pathtrace>"
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
for c in tcpdump capinfos jq go ping ip python3; do command -v "$c" >/dev/null || die "missing command $c"; done
[[ -x /usr/bin/time ]] || apt-get install -y -q time >/dev/null || die "apt-get install time failed"

WORK=$BENCH_DIR/live
mkdir -p "$BENCH_DIR/bin" "$WORK"
PT=${PATHTRACE:-$BENCH_DIR/bin/pathtrace}
if [[ -z ${PATHTRACE:-} ]]; then
	# Built beside, then installed by copying, as a user's binary is: the
	# kernel keeps a file the Go linker has just written in 2 MiB page-cache
	# folios and maps them whole, which adds ~25 MiB to RSS for pages the
	# program never touches; a copied (or re-read) binary is mapped as used.
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$PT.build" ./cmd/pathtrace) || die "build pathtrace"
	install -m 0755 "$PT.build" "$PT" && rm -f "$PT.build" || die "install pathtrace"
fi
LOADGEN=$BENCH_DIR/bin/load
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$LOADGEN" ./bench/load) || die "build bench/load"

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

# load SPEC: start the senders of SPEC (RATExSTREAMS or floodN) pod1 → pod2,
# lasting beyond a capture; LOAD_PIDS and LOAD_OUT say how to stop and read them.
LOAD_PIDS=()
load() {
	local spec=$1 i
	LOAD_PIDS=()
	rm -f "$WORK"/load*.out
	case $spec in
	flood*)
		for ((i = 0; i < ${spec#flood}; i++)); do
			ip netns exec "$POD1" ping -q -f -s 56 -w $((DURATION + 4)) "$DST" >"$WORK/load$i.out" 2>&1 &
			LOAD_PIDS+=($!)
			PIDS+=($!)
		done
		;;
	*x*)
		"$LOADGEN" -netns "/run/netns/$POD1" -dst "$DST" -rate "${spec%x*}" -streams "${spec#*x}" \
			-duration $((DURATION + 4))s >"$WORK/load0.out" 2>&1 &
		LOAD_PIDS+=($!)
		PIDS+=($!)
		;;
	*) die "load $spec: want RATExSTREAMS or floodN" ;;
	esac
	sleep 0.5 # let them reach their rate
}
# sent: echo requests/s the senders reached over their whole run.
sent() {
	case $1 in
	flood*) awk '/packets transmitted/ {n += $1} /time [0-9]+ms/ {for (i = 1; i <= NF; i++) if ($i == "time") {sub("ms", "", $(i + 1)); t = $(i + 1)}}
			END {if (t > 0) printf "%d", n / (t / 1000)}' "$WORK"/load*.out ;;
	*) awk '/^sent/ {sub("/s", "", $7); printf "%d", $7}' "$WORK/load0.out" ;;
	esac
}
stop_load() {
	local p
	for p in "${LOAD_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	LOAD_PIDS=()
}

tcpdump_at() { # name ns iface [args]
	local name=$1 ns=$2 ifc=$3
	shift 3
	ip netns exec "$ns" tcpdump --time-stamp-precision=nano -U -n -B "$TCPDUMP_BUFFER" -i "$ifc" -w "$WORK/$name.cap" "$@" 2>"$WORK/$name.err" &
	TD+=($!)
	PIDS+=($!)
}

# proc_cpu PID...: CPU seconds (user + system) the processes used so far,
# from /proc/PID/stat; read just before they are stopped.
proc_cpu() {
	local p tck total=0
	tck=$(getconf CLK_TCK)
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] || continue
		total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	awk -v t="$total" -v k="$tck" 'BEGIN {printf "%.2f", t / k}'
}

OUT=$BENCH_DIR/live-results.tsv
printf 'capturer\tload\tsent_per_s\tspan_s\tframes\tframes_per_s\tkernel_drops\tdrops_by_point\tcpu_s\tpeak_rss_mib\tspool_filled\n' >"$OUT"

run_pathtrace() { # spec variant(""|spool1g|out|ringN|baseline)
	local spec=$1 rc=0 name=pathtrace${2:+-$2} args=() out=$WORK/pt.txt bin=$PT
	case ${2:-} in
	baseline)
		name=baseline bin=$BASELINE
		;;
	out)
		rm -rf "$WORK/evidence"
		args=(--out "$WORK/evidence")
		;;
	spool1g) args=(--spool-size $((1 << 30))) ;;
	ring*) args=(--ring-size "${2#ring}MiB") ;;
	esac
	# JSON goes to memory: the traces of a flood are gigabytes on a disk.
	[[ $FORMAT == json ]] && out=/dev/shm/${PREFIX}live.json
	load "$spec"
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$bin" --src "$POD1" --dst "$POD2" --passive --duration "${DURATION}s" -q \
		-f "$FORMAT" "${args[@]}" >"$out" 2>"$WORK/pt.err" || rc=$?
	stop_load
	((rc <= 1)) || die "pathtrace failed ($rc): $(tail -3 "$WORK/pt.err")"
	local wall user sys kb
	read -r wall user sys kb < <(tail -1 "$WORK/time")
	local cpu
	cpu=$(awk -v u="$user" -v y="$sys" 'BEGIN {print u + y}')
	if [[ $FORMAT == json ]]; then
		strip_traces <"$out" >"$WORK/pt.json"
		rm -f "$out"
		# span: the capture's coverage; frames and drops per point
		jq -r --arg c "$name" --arg l "$spec" --arg s "$(sent "$spec")" --arg cpu "$cpu" --arg kb "$kb" '
			def ns(t): (t | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + ((t | capture("\\.(?<f>[0-9]+)Z$").f | "0." + .) | tonumber);
			(ns(.live.ended) - ns(.live.started)) as $span
			| ([.points[].coverage.frames] | add) as $f
			| [$c, $l, $s, ($span * 1000 | round / 1000), $f, ($f / $span | floor),
			   ([.points[].coverage.kernel_drops // 0] | add), ([.points[].coverage.kernel_drops // 0 | tostring] | join(",")),
			   $cpu, (($kb | tonumber) / 1024 | floor), ([.warnings[] | select(test("spool"))] | length > 0)]
			| @tsv' "$WORK/pt.json" >>"$OUT"
	else
		local span
		span=$(sed -n 's/^passive: .*(\([0-9.]*\)s)$/\1/p' "$out")
		[[ -n $span ]] || die "no capture span in pathtrace's output"
		# The Points table: POINT ... FRAMES DROPS TRUNC, one row per point.
		awk -v OFS='\t' -v c="$name" -v l="$spec" -v s="$(sent "$spec")" -v span="$span" -v cpu="$cpu" -v kb="$kb" '
			/^Points/ {in_pts = 1; next}
			in_pts && /^ *POINT/ {next}
			in_pts && NF == 0 {in_pts = 0}
			in_pts {f += $(NF - 2); d += $(NF - 1); by = by (by == "" ? "" : ",") $(NF - 1)}
			/spool/ {filled = "true"}
			END {print c, l, s, span, f, int(f / span), d, by, cpu, int(kb / 1024), (filled ? filled : "false")}' "$out" >>"$OUT"
	fi
	rm -rf "$WORK/evidence"
}

run_tcpdump() { # spec
	local spec=$1 name f d by span cpu
	load "$spec"
	TD=()
	tcpdump_at pod1 "$POD1" eth0 -p
	tcpdump_at pod1-veth "$NODE" "$V1" -p
	tcpdump_at cni0 "$NODE" cni0
	tcpdump_at pod2-veth "$NODE" "$V2" -p
	tcpdump_at pod2 "$POD2" eth0 -p
	sleep "$DURATION"
	cpu=$(proc_cpu "${TD[@]}")
	for p in "${TD[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${TD[@]}"; do wait "$p" 2>/dev/null || true; done
	stop_load
	f=0 d=0 by="" span=0
	for name in "${POINTS[@]}"; do
		read -r c k < <(awk '/packets? captured/ {c = $1} /packets? dropped by kernel/ {k = $1} END {print c + 0, k + 0}' "$WORK/$name.err")
		f=$((f + c)) d=$((d + k)) by=${by:+$by,}$k
		span=$(capinfos -T -r -u "$WORK/$name.cap" | awk -v s="$span" '{print ($2 > s ? $2 : s)}')
		rm -f "$WORK/$name.cap"
	done
	printf 'tcpdump\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t-\t-\n' "$spec" "$(sent "$spec")" "$span" "$f" \
		"$(awk -v f="$f" -v s="$span" 'BEGIN {print (s > 0 ? int(f / s) : 0)}')" "$d" "$by" "$cpu" >>"$OUT"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for spec in $LOADS; do
	for ((r = 1; r <= REPEAT; r++)); do
		for c in $CAPTURERS; do
			log "load $spec, run $r/$REPEAT: $c for ${DURATION}s"
			case $c in
			pathtrace) run_pathtrace "$spec" ;;
			pathtrace-spool1g) run_pathtrace "$spec" spool1g ;;
			pathtrace-ring[0-9]*) run_pathtrace "$spec" "${c#pathtrace-}" ;;
			pathtrace-out) run_pathtrace "$spec" out ;;
			baseline) run_pathtrace "$spec" baseline ;;
			tcpdump) run_tcpdump "$spec" ;;
			*) die "capturer $c: want pathtrace, pathtrace-spool1g, pathtrace-out, pathtrace-ringN, baseline or tcpdump" ;;
			esac
			tail -1 "$OUT" | cut -f1-10 >&2
		done
	done
done

# medians per capturer and load; pathtrace's CPU per frame against the tcpdumps'
MED=$BENCH_DIR/live-medians.tsv
python3 - "$OUT" "$MED" "$BENCH_DIR/live-targets.txt" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = {}
for r in rows:
    by.setdefault((r[0], r[1]), []).append(r)
med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
out, targets = open(sys.argv[2], "w"), open(sys.argv[3], "w")
out.write("capturer\tload\truns\tframes_per_s\tkernel_drops\tcpu_ns_frame\tvs_tcpdump_cpu\tpeak_rss_mib\tspool_filled\n")
cpf = {k: statistics.median(float(r[8]) / max(float(r[4]), 1) * 1e9 for r in rs) for k, rs in by.items()}
for (c, l), rs in sorted(by.items()):
    td = cpf.get(("tcpdump", l))
    out.write("\t".join([c, l, str(len(rs)), "%d" % med(rs, 5), "%d" % med(rs, 6), "%d" % cpf[(c, l)],
                          "%.2f" % (cpf[(c, l)] / td) if td else "-",
                          str(max(int(r[9]) for r in rs)) if rs[0][9] != "-" else "-",
                          str(sum(r[10] == "true" for r in rs)) if rs[0][10] != "-" else "-"]) + "\n")
    if c == "pathtrace" and l == "flood4" and td:
        drops, rss = max(int(r[6]) for r in rs), max(int(r[9]) for r in rs)
        v = lambda ok: "met" if ok else "NOT met"
        print(f"live, 4 floods: kernel drops (all runs) {drops} (target 0): {v(drops == 0)}", file=targets)
        print(f"live, 4 floods: CPU per frame {cpf[(c, l)]:.0f} ns = {cpf[(c, l)] / td:.2f}x the tcpdumps' {td:.0f} ns (target <= 4x): {v(cpf[(c, l)] <= 4 * td)}", file=targets)
        print(f"live, 4 floods: peak RSS {rss} MiB (target <= 256 MiB): {v(rss <= 256)}", file=targets)
PY
[[ -s $MED ]] || die "no medians"

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
	echo "# live: $(nproc) cores, load average before/after: $LOAD_BEFORE / $LOAD_AFTER; ${DURATION}s per capture; pathtrace --passive -f $FORMAT; tcpdump -U -B $TCPDUMP_BUFFER -w; echo requests pod1 → pod2 ($DST); $REPEAT runs each, interleaved"
	column -t -s $'\t' "$OUT"
	echo
	column -t -s $'\t' "$MED"
	echo
	cat "$BENCH_DIR/live-targets.txt"
	echo
	awk -F'\t' 'NR > 1 && $7 == 0 && $6 > best[$1] {best[$1] = $6; at[$1] = $2}
		END {for (c in best) printf "highest rate with zero kernel drops: %-14s %9d frames/s at the five points (load %s)\n", c, best[c], at[c]}' "$OUT" | sort
	echo
	cat "$ARM"
} | tee "$BENCH_DIR/live-report.txt"
