#!/usr/bin/env bash
# make-2node.sh — golden captures of pod-to-pod traffic across two nodes:
# the two-node lab of `pathtrace lab up --nodes 2` (nodes on a switch with an
# outside host, pods by the CNI bridge plugin with Flannel's configuration),
# tcpdump at every point of the path from pod1 on nodeA to pod2 on nodeB,
# five pings, and unrelated traffic beside them that only one node's NIC
# sees.
#
# Usage: make-2node.sh [scenario...]   (default: all)
#   scenarios: 2node-vxlan 2node-ipip 2node-udp 2node-geneve 2node-hostgw
#              2node-esp
#   OUT=dir   where to write (default: testdata/captures beside gen/)
#
# Needs root, go (builds pathtrace from this tree), ip, tcpdump, tshark,
# capinfos, jq, socat, arping, ping and the CNI plugins in /usr/lib/cni.
# The capture helpers (cap, cap_ready, cap_stop, check, story.awk) are
# make-captures.sh's. Everything is named ptt2n<pid>-*; the EXIT trap stops
# the captures and removes the lab (`pathtrace lab down`), also on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=ptt2n$$
# Immediate mode: a frame that arrives just before SIGINT is written, not
# left in a ring block ("captured != received"); one interface per tcpdump.
TCPDUMP_OPTS=${TCPDUMP_OPTS:---time-stamp-precision=nano -U -n -e --immediate-mode}
STOP_WAIT=${STOP_WAIT:-0.5}
# shellcheck source=make-captures.sh
source "$HERE/make-captures.sh"
ALL2=(2node-vxlan 2node-ipip 2node-udp 2node-geneve 2node-hostgw 2node-esp)
LABP=$RUN-
PT=$WORK/pathtrace
BG_PIDS=()
# tshark.tsv: make-captures.sh's 22 columns, then 23 ip.src 24 ip.dst
# 25 ip.proto 26 udp.srcport 27 udp.dstport 28 vxlan.vni 29 geneve.vni
# 30 tcp.srcport 31 tcp.dstport 32 tcp.flags 33 esp.spi, all the first
# occurrence (a tunnelled frame's outer header, as other tests read the
# files), then the last occurrence of 34 eth.src 35 eth.dst 36 ip.src
# 37 ip.dst 38 ip.ttl where a frame has two (a tunnel's inner frame; an
# ICMP error's quoted header), else empty.
FIELDS+=(ip.src ip.dst ip.proto udp.srcport udp.dstport vxlan.vni geneve.vni tcp.srcport tcp.dstport tcp.flags esp.spi)
INNER=(eth.src eth.dst ip.src ip.dst ip.ttl)
TSHARK_DECODE=(-d udp.port==8472,vxlan -d udp.port==8285,ip)

cleanup2() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in "${CAP_PIDS[@]}" "${BG_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${CAP_PIDS[@]}" "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	CAP_PIDS=()
	[[ -x $PT ]] && "$PT" lab down --prefix "$LABP" >/dev/null 2>&1
	(exit "$rc")
	cleanup
}
trap cleanup2 EXIT
trap 'exit 130' INT TERM

# point_of FILE: nodeA-flannel.1.cap is the point nodeA-flannel.1.
point_of() {
	local b
	b=$(basename "$1")
	echo "${b%.cap}"
}

# tshark with the decode-as rules the files need.
tshark() { command tshark "${TSHARK_DECODE[@]}" "$@"; }

# lab_up BACKEND: the lab; sets NODEA NODEB POD1 POD2 V1 V2 EXT DEV.
lab_up() {
	"$PT" lab up --nodes 2 --backend "$1" --prefix "$LABP" --json >"$WORK/lab.json"
	NODEA=$(jq -r '.nodes[0].name' "$WORK/lab.json") NODEB=$(jq -r '.nodes[1].name' "$WORK/lab.json")
	POD1=$(jq -r '.pods[0].name' "$WORK/lab.json") POD2=$(jq -r '.pods[1].name' "$WORK/lab.json")
	V1=$(jq -r '.pods[0].host_veth' "$WORK/lab.json") V2=$(jq -r '.pods[1].host_veth' "$WORK/lab.json")
	EXT=$(jq -r '.ext' "$WORK/lab.json")
	DEV=$(jq -r '.nodes[0].tunnel // ""' "$WORK/lab.json")
	NODE=$NODEA # make-captures.sh's write_tsv maps ifindexes there (unused: one interface per file)
	# Let the switch learn every MAC, so unicast between nodeA and ext is
	# never flooded to nodeB.
	ip netns exec "$NODEA" ping -c 1 -W 1 192.168.56.3 >/dev/null
	ip netns exec "$NODEB" ping -c 1 -W 1 192.168.56.3 >/dev/null
	ip netns exec "$NODEA" ping -c 1 -W 1 192.168.56.2 >/dev/null
}

lab_down() {
	"$PT" lab down --prefix "$LABP" >/dev/null
}

# The ipsec backend's SAs (lab/esp.go), as tshark's ESP preferences.
ESP_EK=0x000102030405060708090a0b0c0d0e0f
ESP_AK=0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
ESP_PREFS=(-o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE
	-o "uat:esp_sa:\"IPv4\",\"192.168.56.1\",\"192.168.56.2\",\"0x00001001\",\"AES-CBC [RFC3602]\",\"$ESP_EK\",\"HMAC-SHA-256-128 [RFC4868]\",\"$ESP_AK\""
	-o "uat:esp_sa:\"IPv4\",\"192.168.56.2\",\"192.168.56.1\",\"0x00001002\",\"AES-CBC [RFC3602]\",\"$ESP_EK\",\"HMAC-SHA-256-128 [RFC4868]\",\"$ESP_AK\"")

# esp_decrypted FILE: ICMP echoes tshark finds inside ESP packets with a good
# ICV when it has the keys.
esp_decrypted() {
	command tshark -r "$DIR/$1" -n "${ESP_PREFS[@]}" -T fields -e esp.icv_good -e icmp.type 2>/dev/null |
		awk -F'\t' '$1 == "1" && ($2 == "8" || $2 == "0") {n++} END {print n+0}'
}

# ten_points: tcpdump at every point of the path (eight without a tunnel
# device); sets POINTS and FILES_ORDER.
ten_points() {
	local pts=() p
	cap pod1 "$POD1" eth0 "$DIR/pod1.cap" -p
	cap pod1-veth "$NODEA" "$V1" "$DIR/pod1-veth.cap" -p
	cap nodeA-cni0 "$NODEA" cni0 "$DIR/nodeA-cni0.cap"
	pts=(pod1 pod1-veth nodeA-cni0)
	if [[ -n $DEV ]]; then
		cap "nodeA-$DEV" "$NODEA" "$DEV" "$DIR/nodeA-$DEV.cap" -p
		pts+=("nodeA-$DEV")
	fi
	cap nodeA-eth0 "$NODEA" eth0 "$DIR/nodeA-eth0.cap" -p
	cap nodeB-eth0 "$NODEB" eth0 "$DIR/nodeB-eth0.cap" -p
	pts+=(nodeA-eth0 nodeB-eth0)
	if [[ -n $DEV ]]; then
		cap "nodeB-$DEV" "$NODEB" "$DEV" "$DIR/nodeB-$DEV.cap" -p
		pts+=("nodeB-$DEV")
	fi
	cap nodeB-cni0 "$NODEB" cni0 "$DIR/nodeB-cni0.cap"
	cap pod2-veth "$NODEB" "$V2" "$DIR/pod2-veth.cap" -p
	cap pod2 "$POD2" eth0 "$DIR/pod2.cap" -p
	pts+=(nodeB-cni0 pod2-veth pod2)
	POINTS=${pts[*]}
	FILES_ORDER=()
	for p in "${pts[@]}"; do FILES_ORDER+=("$p.cap"); done
}

# traffic: pod1 pings pod2 five times while nodeA talks TCP to ext (only
# nodeA's eth0 sees it), ext sends UDP to nodeA and nodeB sends UDP to ext
# (nothing listens: ICMP port unreachable back), ext arpings nodeB.
traffic() {
	local ns
	for ns in "$POD1" "$POD2" "$NODEA" "$NODEB" "$EXT"; do ip -n "$ns" neigh flush all; done
	ip netns exec "$EXT" socat -u TCP-LISTEN:5001,reuseaddr OPEN:/dev/null,creat=0 &
	BG_PIDS+=($!)
	sleep 0.2
	{ for i in 1 2 3 4 5 6; do echo "unrelated line $i"; sleep 0.15; done; } |
		ip netns exec "$NODEA" socat -u - TCP:192.168.56.3:5001 &
	local tcp=$!
	{ for i in 1 2 3; do echo "noise $i"; sleep 0.3; done; } | ip netns exec "$EXT" socat -u - UDP-SENDTO:192.168.56.1:9999 &
	local udp1=$!
	{ for i in 1 2 3; do echo "noise $i"; sleep 0.3; done; } | ip netns exec "$NODEB" socat -u - UDP-SENDTO:192.168.56.3:9999 &
	local udp2=$!
	ip netns exec "$EXT" arping -q -c 2 -w 2 -I eth0 192.168.56.2 || true
	ip netns exec "$POD1" ping -c 5 -i 0.2 -W 1 10.244.2.2 >"$WORK/ping.out" || log "ping: $(tail -2 "$WORK/ping.out")"
	wait "$tcp" "$udp1" "$udp2" || true
	CMDS="$PT lab up --nodes 2 --backend $BACKEND; tcpdump ${TCPDUMP_OPTS[*]} -i IF -w F at the points (-p everywhere but cni0); ip neigh flush all in the pods, nodes and ext; in ext: socat TCP-LISTEN:5001; in nodeA: 6 lines to 192.168.56.3:5001 (socat); ext → nodeA:9999 and nodeB → ext:9999 3 UDP datagrams each (nobody listens); in ext: arping -c 2 192.168.56.2; in pod1: ping -c 5 -i 0.2 -W 1 10.244.2.2"
}

sc2() { # BACKEND STORY
	BACKEND=$1
	lab_up "$BACKEND"
	ten_points
	cap_ready
	traffic
	PROTO=icmp
	STORY=$2
}

sc_2node-vxlan() {
	sc2 vxlan "Requests pod1 → pod1-veth → nodeA-cni0 → nodeA-flannel.1 → nodeA-eth0 → nodeB-eth0 → nodeB-flannel.1 → nodeB-cni0 → pod2-veth → pod2, replies back. On the wire (both eth0) every echo is in VXLAN (UDP 8472, VNI 1) between 192.168.56.1 and .2, outer MACs nodeA eth0 ↔ nodeB eth0 (the kernel picks the UDP source port from the inner flow). nodeA routes from cni0 to flannel.1 (TTL 64 → 63, MACs pod1→cni0 become flannel.1 A → flannel.1 B), nodeB from flannel.1 to cni0 (63 → 62). The TCP connection nodeA → ext:5001 is seen at nodeA-eth0 only; nodeB-eth0 sees its own UDP to ext and the ICMP errors, ext's ARP requests (broadcast, at both eth0) and its replies."
}

sc_2node-ipip() {
	sc2 ipip "As 2node-vxlan, through tunl0: on the wire every echo is IPv4 in IPv4 (protocol 4) between 192.168.56.1 and .2, outer TTL inherited from the inner packet (63), outer DF copied from it; tunl0 is a TUN device (LINKTYPE_RAW: no MACs) and the tunnel a pathtrace process (this kernel has no ipip)."
}

sc_2node-udp() {
	sc2 udp "As 2node-vxlan, through flannel0 (Flannel's udp backend, a TUN device and UDP 8285 from port 8285 to port 8285, a userspace proxy as flanneld's): on the wire each echo is a bare IPv4 packet in UDP; the proxy decrements the TTL on each side as flanneld does, so pod2 sees TTL 60 (64, nodeA 63, proxy A 62, proxy B 61, nodeB 60)."
}

sc_2node-geneve() {
	sc2 geneve "As 2node-vxlan, through genev_sys_6081 (a TAP device and a userspace GENEVE tunnel: this kernel has no geneve): on the wire each echo is an Ethernet frame in GENEVE (UDP 6081 to 6081, VNI 1, protocol 0x6558, one 8-byte option as OVN-Kubernetes sends: class 0x0102 type 0x80)."
}

sc_2node-hostgw() {
	sc2 host-gw "Flannel's host-gw: nodeA routes pod2's subnet via nodeB's eth0 address, no tunnel: the echoes cross the wire as they are, TTL 63 between the nodes, MACs nodeA eth0 → nodeB eth0."
}

sc_2node-esp() {
	sc2 ipsec "IPsec ESP in tunnel mode between the nodes (ipsec0, a TUN device, and a userspace ESP tunnel: this kernel has XFRM but no ESP; AES-128-CBC + HMAC-SHA-256-128 with the lab's published keys, SPI 0x1001 nodeA → nodeB, 0x1002 back): on the wire every echo is an ESP packet between 192.168.56.1 and .2 whose inner packet cannot be read without the keys. The echoes are seen in the clear at pod1, pod1-veth, nodeA-cni0 and nodeA-ipsec0, then only as ESP at nodeA-eth0 and nodeB-eth0, then in the clear again at nodeB-ipsec0, nodeB-cni0, pod2-veth and pod2. tshark given the keys decrypts every ESP packet (Checks)."
}

# columns: 1 point 2 file 3 frame.number 4 epoch 5 eth.src 6 eth.dst 7 ip.ttl
# 8 icmp.type 9 icmp.seq ... 23 ip.src 24 ip.dst 25 ip.proto 26 udp.srcport
# 27 udp.dstport 28 vxlan.vni 29 geneve.vni 30 tcp.srcport 32 tcp.flags 33 esp.spi
checks2() {
	CHECKS=()
	local np wire='($1=="nodeA-eth0" || $1=="nodeB-eth0")'
	np=$(wc -w <<<"$POINTS")
	if [[ $SC == 2node-esp ]]; then
		check "echo requests in the clear (all points but the two eth0)" '$8=="8"' $((5 * (np - 2)))
		check "echo replies in the clear (all points but the two eth0)" '$8=="0"' $((5 * (np - 2)))
		check "ESP packets 192.168.56.1 → .2 (SPI 0x1001) at both eth0" "$wire"' && $33=="0x00001001" && $23=="192.168.56.1"' 10
		check "ESP packets 192.168.56.2 → .1 (SPI 0x1002) at both eth0" "$wire"' && $33=="0x00001002" && $23=="192.168.56.2"' 10
		local f got
		for f in nodeA-eth0.cap nodeB-eth0.cap; do
			got=$(esp_decrypted "$f")
			if [[ $got == 10 ]]; then CHECKS+=("ok: echoes tshark decrypts from ESP with the keys, ICV good, in $f = $got"); else
				CHECKS+=("DIFFERENT: echoes tshark decrypts from ESP in $f = $got (expected 10)")
				CHECK_FAILS=$((CHECK_FAILS + 1))
			fi
		done
	else
		check "echo requests at the $np points" '$8=="8"' $((5 * np))
		check "echo replies at the $np points" '$8=="0"' $((5 * np))
	fi
	check "TCP SYNs nodeA → ext at nodeA-eth0" '$1=="nodeA-eth0" && $32=="0x0002" && $31=="5001"' 1
	check "TCP frames at nodeB-eth0" '$1=="nodeB-eth0" && $30!=""' 0
	check "ARP requests from ext for nodeB at nodeB-eth0 (arping)" '$1=="nodeB-eth0" && $11=="1" && $12=="192.168.56.3" && $13=="192.168.56.2"' 2
	case $SC in
	2node-vxlan)
		check "echoes in VXLAN VNI 1 to UDP 8472 at both eth0" "$wire"' && $8!="" && $28=="1" && $27=="8472"' 20
		check "requests with outer TTL 64, inner 63 at both eth0" "$wire"' && $8=="8" && $7=="64" && $38=="63"' 10
		;;
	2node-ipip)
		check "echoes in IP-in-IP at both eth0" "$wire"' && $8!="" && $25=="4" && $36!=""' 20
		check "requests with outer TTL = inner TTL 63 at both eth0" "$wire"' && $8=="8" && $7=="63" && $38=="63"' 10
		;;
	2node-udp)
		check "echoes in UDP 8285 → 8285 at both eth0" "$wire"' && $8!="" && $26=="8285" && $27=="8285"' 20
		check "requests with TTL 60 at pod2" '$1=="pod2" && $8=="8" && $7=="60"' 5
		;;
	2node-geneve)
		check "echoes in GENEVE VNI 1 to UDP 6081 at both eth0" "$wire"' && $8!="" && $29=="0x000001" && $27=="6081"' 20
		;;
	2node-hostgw)
		check "requests with TTL 63 at both eth0" "$wire"' && $8=="8" && $7=="63"' 10
		;;
	esac
}

# write_tsv2: tshark.tsv as above, one file (one point) after the other.
write_tsv2() {
	local f args=() inner=() fld
	for fld in "${FIELDS[@]}"; do args+=(-e "$fld"); done
	for fld in "${INNER[@]}"; do inner+=(-e "$fld"); done
	{
		printf 'point\tfile'
		printf '\t%s' "${FIELDS[@]}"
		printf '\tinner.%s' "${INNER[@]}"
		printf '\n'
		for f in "${FILES[@]}"; do
			paste <(tshark -r "$DIR/$f" -T fields -E occurrence=f "${args[@]}") \
				<(tshark -r "$DIR/$f" -T fields -E occurrence=a -E aggregator=';' "${inner[@]}" |
					awk -F'\t' -v OFS='\t' '{ for (i = 1; i <= NF; i++) { n = split($i, a, ";"); $i = n > 1 ? a[n] : "" } print }') |
				awk -v OFS='\t' -v file="$f" -v pt="$(point_of "$f")" '{ print pt, file, $0 }'
		done
	} >"$DIR/tshark.tsv"
}

# outer_table: every tunnelled or ESP frame of the echoes on the wire.
outer_table() {
	echo "| point | frame | time_epoch | outer eth | outer ip (ttl) | proto | udp ports | vni | inner |"
	echo "|---|---|---|---|---|---|---|---|---|"
	awk -F'\t' 'NR > 1 && ($1 == "nodeA-eth0" || $1 == "nodeB-eth0") && ($8 == "0" || $8 == "8" || $33 != "") {
		vni = $28 != "" ? $28 : $29
		inner = $8 == "8" ? "echo request seq " $9 : ($8 == "0" ? "echo reply seq " $9 : "ESP SPI " $33)
		if ($36 != "") inner = inner ", " $36 ">" $37 " ttl " $38
		printf("| %s | %s | %s | %s>%s | %s>%s (%s) | %s | %s | %s | %s |\n", $1, $3, $4, $5, $6, $23, $24, $7, $25,
			($26 != "" ? $26 ">" $27 : ""), vni, inner)
	}' "$DIR/tshark.tsv"
}

write_facts2() {
	local facts=$DIR/FACTS.md r
	{
		echo "# $SC"
		echo
		echo "Made by testdata/gen/make-2node.sh on $(date -u +%Y-%m-%d), kernel $(uname -r), $(tcpdump --version | head -1), $(tshark --version | head -1 | sed "s/\.$//")."
		echo
		echo "Command: $CMDS"
		echo
		echo "The lab (\`pathtrace lab status\`; names carry the generator's prefix $LABP):"
		echo
		echo '```'
		cat "$WORK/status.txt"
		echo '```'
		echo
		echo "Points (file: namespace interface, MAC):"
		echo
		for r in "${PTMACS[@]}"; do echo "- $r"; done
		echo
		BRIEF=0 facts_body "tshark.tsv = \`tshark ${TSHARK_DECODE[*]} -r FILE -T fields -E occurrence=f -e frame.number -e frame.time_epoch -e eth.src -e eth.dst -e ip.ttl -e icmp.type -e icmp.seq -e icmp.ident ...\` (all columns in its header) for every file, prefixed by point and file: a tunnelled frame's outer header (the echoes' own fields, icmp.*, are the inner packet's), then inner.* columns with the inner frame's addresses and TTL."
		echo
		echo "Outer headers on the wire:"
		echo
		outer_table
		echo
		echo "## Checks"
		echo
		for r in "${CHECKS[@]}"; do echo "- $r"; done
	} >"$facts"
}

# record the lab and every point's interface while it exists.
record2() {
	local f pt ns ifc
	"$PT" lab status --prefix "$LABP" >"$WORK/status.txt"
	PTMACS=()
	for pt in $POINTS; do
		case $pt in
		pod1) ns=$POD1 ifc=eth0 ;;
		pod2) ns=$POD2 ifc=eth0 ;;
		pod1-veth) ns=$NODEA ifc=$V1 ;;
		pod2-veth) ns=$NODEB ifc=$V2 ;;
		nodeA-*) ns=$NODEA ifc=${pt#nodeA-} ;;
		nodeB-*) ns=$NODEB ifc=${pt#nodeB-} ;;
		esac
		PTMACS+=("$pt.cap: ${ns#"$LABP"} $ifc, $(ip -n "$ns" -o link show "$ifc" | grep -o 'link/[a-z]* [0-9a-f:]*' | cut -d' ' -f2 || echo none)")
	done
}

run2() {
	SC=$1
	local attempt f
	declare -F "sc_$SC" >/dev/null || die "unknown scenario $SC"
	for attempt in 1 2 3; do
		DIR=$WORK/out/$SC
		rm -rf "$DIR"
		mkdir -p "$DIR"
		STATS=()
		log "$SC: attempt $attempt"
		"sc_$SC"
		record2
		if cap_stop; then
			break
		fi
		for f in "${BG_PIDS[@]}"; do kill "$f" 2>/dev/null || true; done
		BG_PIDS=()
		lab_down
		((attempt < 3)) || die "$SC: captures dropped packets three times"
	done
	for f in "${BG_PIDS[@]}"; do kill "$f" 2>/dev/null || true; done
	BG_PIDS=()
	FILES=("${FILES_ORDER[@]}")
	write_tsv2
	checks2
	write_facts2
	lab_down
	rm -rf "${OUT:?}/$SC"
	mkdir -p "$OUT"
	chown -R 0:0 "$DIR"
	mv "$DIR" "$OUT/$SC"
	log "$SC: wrote $OUT/$SC ($(du -sk "$OUT/$SC" | cut -f1) KB)"
}

[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
need go ip tcpdump tshark capinfos jq socat arping ping
(cd "$HERE/../.." && CGO_ENABLED=0 go build -o "$PT" ./cmd/pathtrace)
if (($# == 0)); then set -- "${ALL2[@]}"; fi
for sc in "$@"; do run2 "$sc"; done
if ((CHECK_FAILS > 0)); then
	log "$CHECK_FAILS check(s) differ from the expected story; see the Checks section of each FACTS.md"
	exit 2
fi
