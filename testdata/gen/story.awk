# story.awk — per-echo table and story from a tshark.tsv written by
# make-captures.sh. Variables: points (path order of the request, spaces),
# proto (icmp|icmpv6), brief (1: only a few rows around the seq wrap).
# tsv columns: 1 point 2 file 3 frame.number 4 frame.time_epoch 5 eth.src
# 6 eth.dst 7 ip.ttl 8 icmp.type 9 icmp.seq 10 icmp.ident 11 arp.opcode
# 14 ipv6.hlim 15 icmpv6.type 16 icmpv6 seq 17 icmpv6 ident
BEGIN {
	FS = "\t"
	np = split(points, pt, " ")
	if (proto == "icmpv6") { req = "128"; rep = "129" } else { req = "8"; rep = "0" }
	n = 0
}
NR == 1 { next }
{
	if (proto == "icmpv6") { t = $15; seq = $16; id = $17; ttl = $14 } else { t = $8; seq = $9; id = $10; ttl = $7 }
	if (t != req && t != rep) next
	base = id "/" seq "/" t
	# the k-th time an echo shows at a point belongs to its k-th round (seq wrap)
	round = ++occ[base, $1, $2]
	k = base "/" round
	if (!(k in first)) {
		keys[++n] = k
		first[k] = $4 ""
		kseq[k] = seq; kid[k] = id; kreq[k] = (t == req); kround[k] = round
	} else if (($4 "") < first[k]) first[k] = $4 ""
	# SLL2 frames (tcpdump -i any) carry only the source address
	if (!((k, $1) in cell)) cell[k, $1] = "#" $3 " " $4 " ttl " ttl " " ($5 != "" ? $5 ">" $6 : "from " $21)
	seen[k, $1] = 1
}
function show(k) {
	if (brief != 1) return 1
	s = kseq[k] + 0
	return s <= 1 || s == 64 || s >= 65534
}
END {
	# order echoes by first sighting (fixed-width epoch strings compare as text)
	for (i = 2; i <= n; i++) {
		v = keys[i]; j = i - 1
		while (j >= 1 && first[keys[j]] > first[v]) { keys[j + 1] = keys[j]; j-- }
		keys[j + 1] = v
	}
	if (brief == 1) printf("%d echoes (requests and replies, all rounds); rows shown: seq 0, 1, 64, 65534, 65535 of each round.\n\n", n)
	printf("| echo |")
	for (p = 1; p <= np; p++) printf(" %s |", pt[p])
	printf("\n|---|")
	for (p = 1; p <= np; p++) printf("---|")
	printf("\n")
	for (i = 1; i <= n; i++) {
		k = keys[i]
		if (!show(k)) continue
		printf("| seq %s %s (id %s%s) |", kseq[k], kreq[k] ? "request" : "reply", kid[k], kround[k] > 1 ? ", round " kround[k] : "")
		for (p = 1; p <= np; p++) printf(" %s |", ((k, pt[p]) in cell) ? cell[k, pt[p]] : "not seen")
		printf("\n")
	}
	printf("\nCells: frame number, frame.time_epoch, TTL/hop limit, eth.src>eth.dst (SLL2 frames: from sll.src.eth).\n\nStories:\n\n")
	for (i = 1; i <= n; i++) {
		k = keys[i]
		if (!show(k)) continue
		# replies travel the path backwards
		for (p = 1; p <= np; p++) ord[p] = kreq[k] ? pt[p] : pt[np + 1 - p]
		last = 0
		for (p = 1; p <= np; p++) if ((k, ord[p]) in seen) last = p
		line = ""
		for (p = 1; p <= last; p++) {
			line = line (p > 1 ? " → " : "") ord[p] (((k, ord[p]) in seen) ? "" : " (not seen)")
		}
		if (last == 0) line = "not seen"
		else if (last < np) line = line " → lost after " ord[last]
		printf("- seq %s %s%s: %s\n", kseq[k], kreq[k] ? "request" : "reply", kround[k] > 1 ? " (round " kround[k] ")" : "", line)
	}
}
