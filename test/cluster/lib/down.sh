# shellcheck shell=bash
# `down`: remove everything a cluster of this prefix left, from names alone, so
# it works after `up` or the test process was SIGKILLed. Idempotent. Order:
# pods through the API (the kubelet runs CNI DEL), then every process tied to
# the cluster, then the pinned mount namespaces (which frees the pod netns
# mounted in them), the network namespaces, the cgroups, the directories.

# cluster_down [keep-logs]: keep-logs (from a failed `up`) leaves
# /var/tmp/$P-failed-logs for debugging; a plain `down` removes it too.
cluster_down() {
	# Best effort all the way: one failed step must not stop the rest.
	set +e
	[[ ${1:-} == keep-logs ]] || rm -rf "/var/tmp/$P-failed-logs"
	if [[ -s $ADMIN_KUBECONFIG ]] && pids_alive kube-apiserver && kubectl_cp get --raw /readyz >/dev/null 2>&1; then
		pods_delete_all
	fi
	local round
	for round in TERM TERM TERM KILL KILL KILL; do
		local victims
		victims=$(cluster_pids)
		[[ -z $victims ]] && break
		# shellcheck disable=SC2086
		kill -s "$round" $victims 2>/dev/null
		sleep 0.5
	done
	[[ -z $(cluster_pids) ]] || log "processes still alive after SIGKILL: $(cluster_pids)"

	local pin
	for pin in "$RUN"/ns/*.mnt; do
		[[ -e $pin ]] && { umount "$pin" 2>/dev/null || umount -l "$pin"; }
	done
	mountpoint -q "$RUN/ns" 2>/dev/null && umount -l "$RUN/ns"
	local ns
	for ns in $(ip netns list | awk -v p="$P-" 'index($1, p) == 1 {print $1}'); do
		ip netns del "$ns" || log "ip netns del $ns failed"
	done
	# Mounts a crash may have left in the root namespace under our trees.
	local m
	for m in $(awk -v r="$RUN" -v l="$LIB" '$5 == r || index($5, r "/") == 1 || $5 == l || index($5, l "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	cgroups_remove
	rm -rf "$RUN" "$LIB"
}

pids_alive() {
	local f=$RUN/pids/$1
	[[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# Graceful (1 s) so the kubelets stop the sandboxes and run CNI DEL; the pod
# objects go once the kubelets report them terminated.
pods_delete_all() {
	kubectl_cp delete pods --all-namespaces --all --grace-period=1 --wait=false >/dev/null 2>&1 || return 0
	local i
	for ((i = 0; i < 150; i++)); do
		[[ -z $(kubectl_cp get pods -A -o name 2>/dev/null) ]] && return 0
		sleep 0.2
	done
	log "pods still present after 30s; removing them by force"
	kubectl_cp delete pods --all-namespaces --all --force --grace-period=0 >/dev/null 2>&1
}

# Every process of this cluster: recorded daemons, anything in its network or
# mount namespaces (shims, `exec NODE` leftovers), anything in its node
# cgroups (pod processes, which sit in pod netns), anything whose command line
# names its trees.
cluster_pids() {
	local want=() f ino pid
	for f in /run/netns/"$P"-* "$RUN"/ns/*.mnt; do
		[[ -e $f ]] && ino=$(stat -L -c %i "$f" 2>/dev/null) && want+=("$ino")
	done
	{
		for f in "$RUN"/pids/*; do [[ -s $f ]] && cat "$f"; done
		local h
		for h in "$CGROUP_FS"/*/"$P"-node*; do
			[[ -d $h ]] && find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null
		done
		for f in /proc/[0-9]*; do
			pid=${f#/proc/}
			[[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
			if ((${#want[@]})); then
				local nsn nsm
				nsn=$(stat -L -c %i "$f/ns/net" 2>/dev/null) || continue
				nsm=$(stat -L -c %i "$f/ns/mnt" 2>/dev/null) || continue
				for ino in "${want[@]}"; do
					[[ $nsn == "$ino" || $nsm == "$ino" ]] && { echo "$pid"; break; }
				done
			fi
			tr '\0' ' ' 2>/dev/null <"$f/cmdline" | grep -qE "($RUN|$LIB)(/| |$)|netns exec $P-cp " && echo "$pid"
		done
	} | sort -un | while read -r pid; do
		# Only live processes, never this shell or its parents.
		[[ -d /proc/$pid && $pid != "$$" && $pid != "$PPID" ]] && echo "$pid"
	done | tr '\n' ' '
	return 0
}

# Depth first, in every hierarchy (cgroup v1 mounts each controller apart).
cgroups_remove() {
	local h d i
	for ((i = 0; i < 10; i++)); do
		local left=0
		for h in "$CGROUP_FS"/*/"$P"-node*; do
			[[ -d $h ]] || continue
			while read -r d; do rmdir "$d" 2>/dev/null || left=1; done < <(find "$h" -depth -type d)
		done
		((left == 0)) && return 0
		sleep 0.3
	done
	log "cgroup dirs left: $(ls -d "$CGROUP_FS"/*/"$P"-node* 2>/dev/null | tr '\n' ' ')"
}
