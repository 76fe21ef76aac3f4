# Run by node_up inside a node's new mount namespace (already private, in the
# node's network namespace): makes it look like a node of its own.
#   sh node-mounts.sh PREFIX RUN LIB NODEDIR NODERUN TUNABLE=VALUE...
# - /run, /var/lib, /var/log: the node's own trees (NODERUN/run,
#   NODEDIR/var-lib, NODEDIR/var-log), with RUN and LIB bound back in at
#   their usual paths first, while still visible;
# - /sys: a sysfs of the node's network namespace (/sys/class/net lists the
#   node's interfaces), with the host's submounts (cgroup hierarchies,
#   tracefs, bpffs, ...) carried over;
# - the host-wide kernel tunables kubelet checks: regular files over
#   /proc/sys (see KUBELET_TUNABLES in node.sh).
P=$1 RUN=$2 LIB=$3 dir=$4 run=$5
shift 5

mkdir -p "$dir/var-lib/$P" "$run/run/$P" "$run/run/netns" "$run/run/flannel" \
	"$dir/var-log/pods" "$dir/var-log/containers" "$run/sys-stash"
mount --bind "$LIB" "$dir/var-lib/$P"
mount --bind "$RUN" "$run/run/$P"

# /sys first: the stash lives under $run, which /run is about to cover.
mount --rbind /sys "$run/sys-stash"
mount -t sysfs sysfs /sys
# Top-level submounts of the old /sys, in mount order (parents first).
awk -v s="$run/sys-stash/" 'index($5, s) == 1 {print substr($5, length(s))}' /proc/self/mountinfo |
	awk '{ for (i = 1; i <= n; i++) if (index($0, kept[i] "/") == 1) next; kept[++n] = $0; print }' |
	while read -r rel; do
		mount --rbind "$run/sys-stash/$rel" "/sys/$rel"
	done
umount -l "$run/sys-stash"

mount --bind "$dir/var-log" /var/log
mount --rbind "$dir/var-lib" /var/lib
mount --rbind "$run/run" /run
for t in "$@"; do
	mount --bind "$dir/sysctl/${t%%=*}" "/proc/sys/${t%%=*}"
done
