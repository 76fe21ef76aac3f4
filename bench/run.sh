#!/usr/bin/env bash
# run.sh — the issue #5 benchmark: build a large capture set in the lab (flood
# ping pod1 → pod2 captured by tcpdump at the five points), then time, in the
# same run and on the same files, `tcpdump -nn -e -tt -r`, `tshark -r` and
# `pathtrace analyze` (table and JSON): medians of wall and CPU time (CPU per
# frame), peak RSS, and the issue-15 targets met or not; check the JSON's
# traces (counts, one hop per point, no merged probes across the ICMP seq
# wrap) and compare them with the in-memory reference (bench/refcheck); the
# cost of each stage per frame (BenchmarkStages) and a CPU profile.
#
# Usage: sudo bench/run.sh            (see bench/README.md)
#   BENCH_DIR=dir   data, binaries, results (default /tmp/pathtrace-bench; never the repo)
#   PINGS=200000    echoes in the 1x set; the 5x set has 5*PINGS, the 10x set 10*PINGS
#   FIVEX=capture   5x set: capture (real flood ping) | concat (editcap -t + mergecap -a
#                   of five time-shifted copies of the 1x set) | skip
#   TENX=capture    10x set, likewise (2.3 GB, ~1 min of flood)
#   PCAPNG=1        also time set1xng: the 1x set as pcapng (editcap -F pcapng: enhanced
#                   packet blocks, as dumpcap writes them); 0 skips it
#   REUSE=0         1: reuse sets a previous run left complete in BENCH_DIR
#   REPEAT=5        timed runs per tool on the 1x set (interleaved); the table shows medians
#   REPEAT_5X=3     the same on the 5x and 10x sets
#   TSHARK_5X=0     1: also time tshark on the 5x and 10x sets (slow)
#   REF_5X=0        1: also run the in-memory reference on the 5x and 10x sets (~5 GB per 5x)
#   PROFILE=1       0: skip the stage costs and the CPU profile (go test -bench in bench/ + pprof)
#   TIMING=1        0: skip the timed runs, table from the previous run's runs.tsv
#   TCPDUMP_BUFFER=32768  tcpdump -B (KiB); the default 2 MiB ring drops at flood rates
#   PATHTRACE=bin   use this binary instead of building ./cmd/pathtrace
#   BASELINE=bin    also time this (earlier) pathtrace build, interleaved: before/after in one run
#
# Everything runs in namespaces ptbench-*; the EXIT trap stops the captures
# and pings and removes the lab, also on failure. Needs root, tcpdump, tshark,
# capinfos, editcap, mergecap, jq, go, ping, taskset, sha256sum, /usr/bin/time (apt: time).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/pathtrace-bench}
PREFIX=ptbench- SUBNET=10.93.1.0/24
PINGS=${PINGS:-200000}
FIVEX=${FIVEX:-capture}
TENX=${TENX:-capture}
PCAPNG=${PCAPNG:-1}
REUSE=${REUSE:-0}
REPEAT=${REPEAT:-5}
REPEAT_5X=${REPEAT_5X:-3}
TSHARK_5X=${TSHARK_5X:-0}
REF_5X=${REF_5X:-0}
PROFILE=${PROFILE:-1}
TIMING=${TIMING:-1}
TCPDUMP_BUFFER=${TCPDUMP_BUFFER:-32768}
STOP_WAIT=1.5 # past tcpdump's 1 s ring-block timeout, so the last frames are written
FILES=(pod1.cap pod1-veth.cap cni0.cap pod2-veth.cap pod2.cap)

case $BENCH_DIR in "$ROOT" | "$ROOT"/*) echo "BENCH_DIR must be outside the repository" >&2; exit 2 ;; esac

CAP_PIDS=()
PING_PIDS=()
LAB_UP=0
log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${PING_PIDS[@]}" "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${PING_PIDS[@]}" "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if ((LAB_UP)); then "$PT" lab down --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null 2>&1 || log "lab down failed"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
for c in tcpdump tshark capinfos editcap mergecap jq go ping ip taskset sha256sum; do
	command -v "$c" >/dev/null || die "missing command $c"
done
if [[ ! -x /usr/bin/time ]]; then
	log "installing GNU time (apt)"
	apt-get install -y -q time >/dev/null || die "apt-get install time failed"
fi

mkdir -p "$BENCH_DIR/bin" "$BENCH_DIR/work"
WORK=$BENCH_DIR/work
PT=${PATHTRACE:-$BENCH_DIR/bin/pathtrace}
REFCHECK=$BENCH_DIR/bin/refcheck
log "building in $ROOT"
if [[ -z ${PATHTRACE:-} ]]; then
	# Built beside, then installed by copying, as a user's binary is: the
	# kernel keeps a file the Go linker has just written in 2 MiB page-cache
	# folios and maps them whole, which adds ~25 MiB to RSS for pages the
	# program never touches; a copied (or re-read) binary is mapped as used.
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$PT.build" ./cmd/pathtrace) || die "build pathtrace"
	install -m 0755 "$PT.build" "$PT" && rm -f "$PT.build" || die "install pathtrace"
fi
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$REFCHECK" ./bench/refcheck) || die "build refcheck"

# --- the lab and the capture sets -------------------------------------------------

lab_up() {
	"$PT" lab down --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null 2>&1 || true
	LAB_UP=1
	"$PT" lab up --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null || die "lab up"
	local st
	st=$("$PT" lab status --prefix "$PREFIX" --subnet "$SUBNET" --json) || die "lab status"
	NODE=$(jq -r .node <<<"$st")
	POD1=$(jq -r '.pods[0].name' <<<"$st") POD2=$(jq -r '.pods[1].name' <<<"$st")
	V1=$(jq -r '.pods[0].host_veth' <<<"$st") V2=$(jq -r '.pods[1].host_veth' <<<"$st")
	DST=$(jq -r '.pods[1].ip' <<<"$st")
}

# cap NAME NS IFACE FILE [tcpdump args]
cap() {
	local name=$1 ns=$2 ifc=$3 file=$4
	shift 4
	ip netns exec "$ns" tcpdump --time-stamp-precision=nano -U -n -B "$TCPDUMP_BUFFER" -i "$ifc" -w "$file" "$@" 2>"$WORK/$name.err" &
	CAP_PIDS+=($!)
}

# capture_set DIR COUNT: five tcpdumps around one flood ping of COUNT echoes.
# A set whose tcpdumps report a kernel drop, or that lacks an echo, is rebuilt.
capture_set() {
	local dir=$1 count=$2 attempt j bad p name captured received dropped req total
	for attempt in 1 2 3; do
		rm -rf "$dir"
		mkdir -p "$dir"
		CAP_PIDS=()
		cap pod1 "$POD1" eth0 "$dir/pod1.cap" -p
		cap pod1-veth "$NODE" "$V1" "$dir/pod1-veth.cap" -p
		cap cni0 "$NODE" cni0 "$dir/cni0.cap" # promiscuous: bridged unicast shows on cni0
		cap pod2-veth "$NODE" "$V2" "$dir/pod2-veth.cap" -p
		cap pod2 "$POD2" eth0 "$dir/pod2.cap" -p
		for ((j = 0; j < 100; j++)); do
			bad=0
			for name in pod1 pod1-veth cni0 pod2-veth pod2; do
				grep -q 'listening on' "$WORK/$name.err" || bad=1
			done
			((bad == 0)) && break
			sleep 0.1
		done
		((bad == 0)) || die "tcpdumps not listening after 10 s: $(cat "$WORK"/*.err)"
		for p in "$POD1" "$POD2" "$NODE"; do ip -n "$p" neigh flush all 2>/dev/null || true; done
		log "$(basename "$dir"): attempt $attempt: ping -f -c $count -s 56 $DST"
		ip netns exec "$POD1" ping -q -f -c "$count" -s 56 "$DST" >"$WORK/ping.out" 2>&1 || true
		grep -E 'transmitted|rtt' "$WORK/ping.out" >&2 || true
		sleep "$STOP_WAIT"
		for p in "${CAP_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
		for p in "${CAP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
		CAP_PIDS=()
		bad=0 total=0
		: >"$dir/capture-stats.txt"
		for name in pod1 pod1-veth cni0 pod2-veth pod2; do
			captured=$(awk '/packets? captured/ {print $1}' "$WORK/$name.err")
			received=$(awk '/packets? received by filter/ {print $1}' "$WORK/$name.err")
			dropped=$(awk '/packets? dropped by kernel/ {print $1}' "$WORK/$name.err")
			echo "$name: $captured captured, $received received by filter, $dropped dropped by kernel" | tee -a "$dir/capture-stats.txt" >&2
			[[ $dropped == 0 ]] || bad=1
			total=$((total + ${captured:-0}))
		done
		req=$(tcpdump -r "$dir/pod1.cap" -nn 'icmp[icmptype]==8' 2>/dev/null | wc -l)
		echo "echo requests at pod1: $req (ping: $(grep transmitted "$WORK/ping.out"))" >>"$dir/capture-stats.txt"
		[[ $req == "$count" ]] || { log "pod1 saw $req echo requests, want $count"; bad=1; }
		if ((bad == 0)); then
			echo "$total" >"$dir/frames"
			echo "$req" >"$dir/requests"
			cp "$WORK/ping.out" "$dir/ping.out"
			return 0
		fi
		log "$(basename "$dir"): kernel drops or missing echoes: rebuilding"
	done
	die "$(basename "$dir"): captures dropped packets three times"
}

# concat_set SRC DST N: N copies of SRC, each shifted past the previous one.
concat_set() {
	local src=$1 dst=$2 n=$3 f i span parts
	rm -rf "$dst"
	mkdir -p "$dst"
	span=$(capinfos -T -r -u "$src/pod1.cap" | awk -F'\t' '{printf "%d", $2 + 2}')
	for f in "${FILES[@]}"; do
		parts=()
		for ((i = 0; i < n; i++)); do
			editcap -F nsecpcap -t $((i * span)) "$src/$f" "$WORK/part$i.cap"
			parts+=("$WORK/part$i.cap")
		done
		mergecap -F nsecpcap -a -w "$dst/$f" "${parts[@]}"
		rm -f "${parts[@]}"
	done
	echo $(($(cat "$src/frames") * n)) >"$dst/frames"
	echo $(($(cat "$src/requests") * n)) >"$dst/requests"
	echo "concatenated: $n copies of $src shifted by $span s each (editcap -t, mergecap -a)" >"$dst/capture-stats.txt"
}

set_ok() { [[ -s $1/frames && -s $1/requests ]] && for f in "${FILES[@]}"; do [[ -s $1/$f ]] || return 1; done; }

SET1=$BENCH_DIR/set1x
if [[ $REUSE == 1 ]] && set_ok "$SET1"; then
	log "reusing $SET1"
else
	lab_up
	capture_set "$SET1" "$PINGS"
fi
SETS=("$SET1")
# larger_set N MODE: the set N times the 1x one, captured or concatenated.
larger_set() {
	local n=$1 mode=$2 dir=$BENCH_DIR/set${1}x
	case $mode in
	capture)
		if [[ $REUSE == 1 ]] && set_ok "$dir"; then
			log "reusing $dir"
		else
			[[ ${NODE:-} ]] || lab_up
			capture_set "$dir" $((n * PINGS))
		fi
		;;
	concat)
		if [[ $REUSE == 1 ]] && set_ok "$dir"; then log "reusing $dir"; else concat_set "$SET1" "$dir" "$n"; fi
		;;
	skip) return ;;
	*) die "${n}x set: mode $mode: want capture, concat or skip" ;;
	esac
	SETS+=("$dir")
}
larger_set 5 "$FIVEX"
larger_set 10 "$TENX"
if [[ $PCAPNG == 1 ]]; then
	NG=$BENCH_DIR/set1xng
	if [[ $REUSE == 1 ]] && set_ok "$NG"; then
		log "reusing $NG"
	else
		log "set1xng: pcapng copy of $SET1"
		mkdir -p "$NG"
		for f in "${FILES[@]}"; do editcap -F pcapng "$SET1/$f" "$NG/$f" || die "editcap $f"; done
		cp "$SET1/frames" "$SET1/requests" "$NG/"
		echo "pcapng copy of $SET1 (editcap -F pcapng)" >"$NG/capture-stats.txt"
	fi
	SETS+=("$NG")
fi
if ((LAB_UP)); then
	"$PT" lab down --prefix "$PREFIX" --subnet "$SUBNET" >/dev/null || log "lab down failed"
	LAB_UP=0
fi

# --- timing ---------------------------------------------------------------------

RES=$BENCH_DIR/results.tsv
printf 'tool\tinput\tframes\twall_s\tcpu_s\tcpu_ns_frame\tframes_s\twall_vs_tcpdump\tpeak_rss_mib\truns\n' >"$RES"

# timeit OUT CMD... → T_SEC T_CPU T_KB; exit status 1 (analyze: findings) counts as success.
timeit() {
	local out=$1 rc=0 u sy
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >"$out" 2>"$WORK/stderr" || rc=$?
	((rc <= 1)) || die "$* failed ($rc): $(tail -3 "$WORK/stderr")"
	read -r T_SEC u sy T_KB < <(tail -1 "$WORK/time")
	T_CPU=$(awk -v u="$u" -v s="$sy" 'BEGIN {printf "%.2f", u + s}')
}

RUNLOG=$BENCH_DIR/runs.tsv # every timed run, as measured: key, wall s, cpu s, peak KB

# pace: seconds each CPU takes for one fixed single-threaded job (sha256 of
# 256 MiB in the page cache), pinned. On this VM the two vCPUs were seen to
# differ by up to 1.5x for minutes at a time (the host's other tenants):
# tcpdump is single-threaded, so its time, and every ratio to it, moves with
# the CPU it lands on; the pace says which stretch a run saw.
pace() {
	local c t out= bin=$WORK/pace.bin size=$((256 << 20))
	if [[ $(stat -c %s "$bin" 2>/dev/null) != "$size" ]]; then
		head -c "$size" /dev/zero >"$bin.tmp" && sync "$bin.tmp" && mv "$bin.tmp" "$bin" || die "pace: cannot write $bin"
	fi
	cat "$bin" >/dev/null # in the page cache: the sets read since may have pushed it out
	for c in $(cpus); do
		t=$( { /usr/bin/time -f %e taskset -c "$c" sha256sum "$bin" >/dev/null; } 2>&1 | tail -1) ||
			die "pace: sha256sum on cpu$c failed: $t"
		out+="cpu$c $t s  "
	done
	echo "${out%  }"
}

# cpus lists the ids of the CPUs this process may run on (Cpus_allowed_list:
# "0-3,6" → 0 1 2 3 6), not 0 to nproc-1: under taskset or a cpuset they differ.
cpus() {
	local r a b
	for r in $(awk '/^Cpus_allowed_list:/ {gsub(",", " ", $2); print $2}' /proc/self/status); do
		a=${r%-*} b=${r#*-}
		seq "$a" "$b"
	done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $TIMING == 1 ]]; then
	: >"$RUNLOG"
	echo "$LOAD_BEFORE" >"$BENCH_DIR/load-before"
	pace >"$BENCH_DIR/pace-before"
else
	# Checked only here, after the sets: building them is what a first
	# TIMING=0 run is good for.
	[[ -s $RUNLOG ]] || die "TIMING=0: no earlier timed run in $BENCH_DIR ($RUNLOG): the sets are ready, rerun with TIMING=1"
	log "TIMING=0: the table comes from the previous run's $RUNLOG"
	LOAD_BEFORE="$(cat "$BENCH_DIR/load-before" 2>/dev/null || true) (previous run)"
fi
log_run() { printf '%s\t%s\t%s\t%s\n' "$1" "$T_SEC" "$T_CPU" "$T_KB" | tee -a "$RUNLOG" >&2; }
for set in "${SETS[@]}"; do
	[[ $TIMING == 1 ]] || break
	name=$(basename "$set")
	paths=()
	for f in "${FILES[@]}"; do paths+=("$set/$f"); done
	reps=$REPEAT
	[[ $name == set1x ]] || reps=$REPEAT_5X
	for ((r = 1; r <= reps; r++)); do
		log "$name: run $r/$reps"
		timeit /dev/null bash -c 'for f; do tcpdump -nn -e -tt -r "$f"; done' _ "${paths[@]}"
		log_run "tcpdump|$name"
		timeit /dev/null "$PT" analyze -q "${paths[@]}"
		log_run "pathtrace table|$name"
		timeit /dev/null "$PT" analyze -q -f json "${paths[@]}"
		log_run "pathtrace json|$name"
		if [[ -n ${BASELINE:-} ]]; then
			timeit /dev/null "$BASELINE" analyze -q "${paths[@]}"
			log_run "baseline table|$name"
			timeit /dev/null "$BASELINE" analyze -q -f json "${paths[@]}"
			log_run "baseline json|$name"
		fi
	done
	if [[ $name == set1x || $TSHARK_5X == 1 ]]; then
		log "$name: tshark"
		timeit /dev/null bash -c 'for f; do tshark -r "$f"; done' _ "${paths[@]}"
		log_run "tshark|$name"
	fi
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
[[ $TIMING == 1 ]] || LOAD_AFTER=$(cat "$BENCH_DIR/load-after" 2>/dev/null || true)
echo "$LOAD_AFTER" >"$BENCH_DIR/load-after"
[[ $TIMING != 1 ]] || pace >"$BENCH_DIR/pace-after"
# medians per tool and set; × tcpdump from the medians of one run's interleaved timings
python3 - "$RUNLOG" "$RES" "${SETS[@]}" <<'PY'
import statistics, sys, os
runlog, res, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
for line in open(runlog):
    k, wall, cpu, kb = line.rstrip("\n").split("\t")
    runs.setdefault(k, []).append((float(wall), float(cpu), int(kb)))
with open(res, "a") as out:
    for d in sets:
        name, frames = os.path.basename(d), int(open(os.path.join(d, "frames")).read())
        td = runs.get("tcpdump|" + name)
        for tool in ("tcpdump", "tshark", "baseline table", "baseline json", "pathtrace table", "pathtrace json"):
            r = runs.get(tool + "|" + name)
            if not r:
                continue
            wall, cpu = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
            vs = "%.2f" % (wall / statistics.median(x[0] for x in td)) if td else "-"
            out.write("\t".join([tool, name, str(frames), "%.2f" % wall, "%.2f" % cpu, "%d" % (cpu / frames * 1e9),
                                  str(int(frames / wall)), vs, "%.1f" % (max(x[2] for x in r) / 1024), str(len(r))]) + "\n")
# Paired: each repetition's own ratios (its runs follow one another within
# seconds), then their median. This VM's neighbours slow everything by up to
# a third for minutes at a time; a ratio of medians can pair a slow minute's
# run with a fast one's, a repetition's ratio cannot.
with open(os.path.join(os.path.dirname(res), "paired.txt"), "w") as out:
    for d in sets:
        name = os.path.basename(d)
        td, tb, tj = (runs.get(k + "|" + name, []) for k in ("tcpdump", "pathtrace table", "pathtrace json"))
        n = min(len(td), len(tb), len(tj))
        if n == 0:
            continue
        vs = statistics.median(tb[i][0] / td[i][0] for i in range(n))
        js = statistics.median(tj[i][0] / tb[i][0] for i in range(n))
        cpu = statistics.median(tb[i][1] / td[i][1] for i in range(n))
        out.write("paired, %s (median of %d repetitions' own ratios): table wall %.2fx tcpdump's, CPU %.2fx tcpdump's; -f json wall %.2fx the table\n"
                  % (name, n, vs, cpu, js))
PY

# --- correctness ----------------------------------------------------------------

CHECKS=$BENCH_DIR/checks.txt
: >"$CHECKS"
FAIL=0
for set in "${SETS[@]}"; do
	name=$(basename "$set")
	paths=()
	for f in "${FILES[@]}"; do paths+=("$set/$f"); done
	log "$name: checking the JSON"
	json=$WORK/$name.json
	rc=0
	"$PT" analyze -q -f json "${paths[@]}" >"$json" || rc=$?
	((rc <= 1)) || die "analyze -f json $name failed ($rc)"
	# the summary is the last object; no early exit, so no SIGPIPE under pipefail
	frames=$(tail -n 80 "$json" | awk '/"frames":/ {gsub(/[^0-9]/, ""); v = $0} END {print v}')
	want=$(cat "$set/frames")
	if [[ $frames == "$want" ]]; then
		echo "$name: summary.frames $frames = frames tcpdump captured: ok" >>"$CHECKS"
	else
		echo "$name: summary.frames $frames != $want frames tcpdump captured: FAIL" >>"$CHECKS"
		FAIL=1
	fi
	echo "$name: verdict: $(tail -n 80 "$json" | awk -F'"verdict": ' 'NF > 1 {v = $2} END {print v}')" >>"$CHECKS"
	noref=()
	[[ $name == set1x || $REF_5X == 1 ]] || noref=(-noref)
	# A probe's hops can be as far apart as ping's slowest round trip (a loaded
	# VM stalls a veth for tens of ms); a merge across the seq wrap would span
	# ~65536 echoes, seconds. With a concatenated set, the 1x ping.out counts.
	pingout=$set/ping.out
	[[ -s $pingout ]] || pingout=$SET1/ping.out
	span=$(sed -n 's|^rtt [^=]*= [^/]*/[^/]*/\([0-9]*\)[.].*|\1|p' "$pingout")
	span=$((${span:-0} + 1))ms
	if /usr/bin/time -f '%e %M' -o "$WORK/time" "$REFCHECK" -json "$json" -requests "$(cat "$set/requests")" -span "$span" "${noref[@]}" "${paths[@]}" >"$WORK/refcheck.out" 2>&1; then
		sed "s/^/$name: /" "$WORK/refcheck.out" >>"$CHECKS"
	else
		sed "s/^/$name: FAIL: /" "$WORK/refcheck.out" >>"$CHECKS"
		FAIL=1
	fi
	read -r s kb < <(tail -1 "$WORK/time")
	echo "$name: refcheck ${noref[*]:-with reference} took $s s, peak RSS $((kb / 1024)) MiB; JSON $(($(stat -c %s "$json") >> 20)) MiB" >>"$CHECKS"
	rm -f "$json"
done

# --- profile --------------------------------------------------------------------

if [[ $PROFILE == 1 ]]; then
	log "stage costs and CPU profile (go test -bench in bench/, set1x)"
	(cd "$ROOT" && PATHTRACE_BENCH_SET=$SET1 go test -run '^$' -bench 'BenchmarkStages|BenchmarkEngine' -benchtime 3x -benchmem \
		-o "$BENCH_DIR/bin/bench.test" ./bench/) >"$BENCH_DIR/stages.txt" 2>&1 ||
		log "go test -bench failed: $(tail -5 "$BENCH_DIR/stages.txt")"
	(cd "$ROOT" && PATHTRACE_BENCH_SET=$SET1 go test -run '^$' -bench 'BenchmarkAnalyze/table' -benchtime 1x -benchmem \
		-cpuprofile "$BENCH_DIR/cpu.prof" -o "$BENCH_DIR/bin/bench.test" ./bench/) >"$BENCH_DIR/bench.txt" 2>&1 ||
		log "go test -bench failed: $(tail -5 "$BENCH_DIR/bench.txt")"
	if [[ -s $BENCH_DIR/cpu.prof ]]; then
		go tool pprof -top -nodecount 15 "$BENCH_DIR/bin/bench.test" "$BENCH_DIR/cpu.prof" >"$BENCH_DIR/pprof-top.txt" 2>/dev/null || true
		go tool pprof -top -cum -nodecount 25 "$BENCH_DIR/bin/bench.test" "$BENCH_DIR/cpu.prof" >"$BENCH_DIR/pprof-cum.txt" 2>/dev/null || true
	fi
fi

# --- targets (issue 15) ---------------------------------------------------------

TARGETS=$BENCH_DIR/targets.txt
awk -F'\t' '
	NR == 1 {next}
	$1 == "pathtrace table" {w[$2] = $4; cpu[$2] = $6; rss[$2] = $9; vs[$2] = $8}
	$1 == "pathtrace json" {jw[$2] = $4}
	function v(ok) {return ok ? "met" : "NOT met"}
	END {
		if ("set1x" in w) {
			printf "analyze (table) wall vs tcpdump, set1x: %.2fx (target <= 0.35x): %s\n", vs["set1x"], v(vs["set1x"] <= 0.35)
			printf "CPU per frame, analyze, set1x: %d ns (target <= 400 ns): %s\n", cpu["set1x"], v(cpu["set1x"] <= 400)
			printf "-f json vs table, set1x: %.2fx (target <= 1.2x): %s\n", jw["set1x"] / w["set1x"], v(jw["set1x"] <= 1.2 * w["set1x"])
		}
		for (s in rss) printf "peak RSS, analyze, %s: %.1f MiB (target <= 64 MiB): %s\n", s, rss[s], v(rss[s] <= 64)
	}' "$RES" | sort >"$TARGETS"

# --- report ---------------------------------------------------------------------

{
	echo "# pathtrace bench $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average before/after timing: $LOAD_BEFORE / $LOAD_AFTER"
	prev=
	[[ $TIMING == 1 ]] || prev=" (previous run)"
	echo "# CPU pace (sha256 of 256 MiB, pinned) before timing: $(cat "$BENCH_DIR/pace-before" 2>/dev/null || true); after: $(cat "$BENCH_DIR/pace-after" 2>/dev/null || true)$prev"
	echo "# pathtrace $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$( (cd "$ROOT" && git diff --quiet 2>/dev/null) || echo '+dirty'), tcpdump -B $TCPDUMP_BUFFER, medians of $REPEAT interleaved runs on set1x, $REPEAT_5X on the larger sets (tshark: 1), output to /dev/null"
	for set in "${SETS[@]}"; do
		echo "# $(basename "$set"): $(du -sm "$set" | cut -f1) MB, $(cat "$set/frames") frames, $(cat "$set/requests") echo requests"
		sed 's/^/#   /' "$set/capture-stats.txt"
	done
	column -t -s $'\t' "$RES"
	echo
	cat "$TARGETS"
	cat "$BENCH_DIR/paired.txt" 2>/dev/null
	echo
	cat "$CHECKS"
	if [[ -s $BENCH_DIR/stages.txt ]]; then
		echo
		echo "# stage costs per frame (each stage includes those before it), set1x:"
		grep -E '^Benchmark' "$BENCH_DIR/stages.txt" || true
	fi
	if [[ -s $BENCH_DIR/pprof-top.txt ]]; then
		echo
		cat "$BENCH_DIR/pprof-top.txt"
	fi
} | tee "$BENCH_DIR/report.txt"
((FAIL == 0)) || die "correctness checks failed (see $CHECKS)"
