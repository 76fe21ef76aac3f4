# shellcheck shell=bash
# `build`: the Kubernetes binaries (from k8s.io/kubernetes at $K8S_VERSION, see
# go.mod) and the two docker-archive images, cached in $CACHE and built only
# when missing. A lock keeps two concurrent builds from racing on the cache.

K8S_BINARIES=(kube-apiserver kubelet kubectl kube-proxy)
PAUSE_IMAGE=pathtrace.test/pause:1
BUSYBOX_IMAGE=pathtrace.test/busybox:1

# command -> Debian package, for what the cluster runs from Debian.
DEB_DEPS=(etcd:etcd-server containerd:containerd ctr:containerd runc:runc busybox:busybox-static
	/usr/lib/cni/bridge:containernetworking-plugins socat:socat nft:nftables tcpdump:tcpdump
	ip:iproute2 nsenter:util-linux openssl:openssl jq:jq)

build_all() {
	deps_install
	mkdir -p "$CACHE/images"
	exec 9>"$CACHE/.lock"
	flock 9
	local b
	for b in "${K8S_BINARIES[@]}"; do build_k8s_binary "$b"; done
	build_images
	exec 9>&-
}

# deps_install: apt-get install the missing Debian packages. A policy-rc.d
# keeps their maintainer scripts from starting host-wide etcd/containerd
# services (this cluster runs its own, in its namespaces); it is removed
# again, and one already there is left alone.
deps_install() {
	local d pkgs=()
	for d in "${DEB_DEPS[@]}"; do
		if [[ ${d%%:*} == /* ]]; then [[ -e ${d%%:*} ]] && continue; else command -v "${d%%:*}" >/dev/null && continue; fi
		[[ " ${pkgs[*]} " == *" ${d#*:} "* ]] || pkgs+=("${d#*:}")
	done
	((${#pkgs[@]})) || return 0
	log "installing from Debian: ${pkgs[*]}"
	local policy=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
	fi
	local rc=0
	(export DEBIAN_FRONTEND=noninteractive && apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null) || rc=$?
	[[ -n $policy ]] && rm -f "$policy"
	((rc == 0)) || die "apt-get install ${pkgs[*]} failed"
}

build_k8s_binary() {
	local name=$1 start
	[[ -x $CACHE/$name ]] && return 0
	start=$(date +%s)
	log "building $name $K8S_VERSION (minutes: one core-heavy go build)"
	local minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	(cd "$HERE" && CGO_ENABLED=0 go build -o "$CACHE/$name.tmp" \
		-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
		"k8s.io/kubernetes/cmd/$name") || die "go build $name failed"
	mv "$CACHE/$name.tmp" "$CACHE/$name"
	echo "$name $(($(date +%s) - start))s" >>"$CACHE/build-times"
	log "built $name in $(($(date +%s) - start))s"
}

build_images() {
	mkdir -p "$CACHE/images"
	local tmp
	if [[ ! -s $CACHE/images/pause.tar ]]; then
		tmp=$(mktemp -d)
		(cd "$HERE" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/root/pause" ./images/pause) || die "go build pause failed"
		make_image "$PAUSE_IMAGE" "$tmp/root" '["/pause"]' "$CACHE/images/pause.tar"
		rm -rf "$tmp"
	fi
	if [[ ! -s $CACHE/images/busybox.tar ]]; then
		[[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
		# A dynamic busybox would not run in the image (no libc there).
		! ldd /bin/busybox >/dev/null 2>&1 || die "/bin/busybox is not static: apt-get install busybox-static"
		tmp=$(mktemp -d)
		mkdir -p "$tmp/root/bin" "$tmp/root/etc" "$tmp/root/tmp" "$tmp/root/root"
		chmod 1777 "$tmp/root/tmp"
		cp /bin/busybox "$tmp/root/bin/busybox"
		local a
		for a in $(/bin/busybox --list); do
			[[ $a == busybox ]] || ln -s busybox "$tmp/root/bin/$a"
		done
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/root/etc/passwd"
		printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/root/etc/group"
		make_image "$BUSYBOX_IMAGE" "$tmp/root" '["/bin/sh"]' "$CACHE/images/busybox.tar"
		rm -rf "$tmp"
	fi
}

# make_image REF ROOTDIR CMDJSON OUT: a docker-archive (manifest.json, config,
# one layer) of ROOTDIR, the format `ctr images import` reads. Deterministic:
# same tree, same digests.
make_image() {
	local ref=$1 root=$2 cmd=$3 out=$4 work layer_sha cfg cfg_sha
	work=$(mktemp -d)
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
	layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	mkdir "$work/$layer_sha"
	mv "$work/layer.tar" "$work/$layer_sha/layer.tar"
	cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$cmd" "$layer_sha")
	cfg_sha=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	printf '%s' "$cfg" >"$work/$cfg_sha.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg_sha" "$ref" "$layer_sha" >"$work/manifest.json"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" manifest.json "$cfg_sha.json" "$layer_sha"
	mv "$out.tmp" "$out"
	rm -rf "$work"
}
