# shellcheck shell=bash
# The control plane: a network namespace $P-cp holding the wire bridge (the
# underlay every node's eth0 hangs on), etcd on its 127.0.0.1 and the API
# server on $CP_IP:6443. No controller-manager and no scheduler: what they
# would create (default ServiceAccounts, kube-root-ca.crt, node podCIDRs) the
# script writes itself, and pods name their node.

cp_up() {
	ip netns add "$CP_NS" || die "ip netns add $CP_NS"
	ip -n "$CP_NS" link set lo up
	ip -n "$CP_NS" link add "$WIRE_BR" type bridge
	ip -n "$CP_NS" addr add "$CP_IP/24" dev "$WIRE_BR"
	ip -n "$CP_NS" link set "$WIRE_BR" up

	mkdir -p "$LIB/etcd" "$LOGS"
	chmod 700 "$LIB/etcd"
	start_daemon etcd "$LOGS/etcd.log" ip netns exec "$CP_NS" etcd \
		--name "$P-etcd" --data-dir "$LIB/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$P-etcd=http://127.0.0.1:2380" --logger zap --log-level warn

	local pki=$LIB/pki t0
	t0=$(now_ms)
	start_daemon kube-apiserver "$LOGS/kube-apiserver.log" ip netns exec "$CP_NS" "$CACHE/kube-apiserver" \
		--etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --secure-port="$APISERVER_PORT" --advertise-address="$CP_IP" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true \
		--kubelet-preferred-address-types=InternalIP \
		--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$pki/ca.crt" \
		--v=1
	wait_for 60 "kube-apiserver /readyz (log: $LOGS/kube-apiserver.log)" kubectl_cp get --raw /readyz
	log "kube-apiserver ready $(secs_since "$t0") after its start"

	# The API server's client cert may use the kubelet API (exec, attach,
	# port-forward, logs): the kubelets authorize it by webhook against RBAC.
	kubectl_cp create clusterrolebinding "$P-apiserver-kubelet-client" \
		--clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client >/dev/null
	local ns
	for ns in default kube-system kube-public; do ns_prepare "$ns"; done
	host_forwarder_up
}

# A root-namespace door to the API server, for test processes that run there
# (client-go from `go test`): socat listens on 127.0.0.1:PORT of the root
# namespace only and carries each connection into $CP_NS. No root-namespace
# address, route or firewall rule is added.
host_forwarder_up() {
	command -v socat >/dev/null || {
		log "socat missing: no root-namespace kubeconfig (apt-get install socat)"
		return 0
	}
	local port
	for ((port = 16443; port < 16543; port++)); do
		[[ -z $(ss -Hltn "sport = :$port") ]] && break
	done
	printf '#!/bin/sh\nexec ip netns exec %s socat STDIO TCP:%s:%s\n' "$CP_NS" "$CP_IP" "$APISERVER_PORT" >"$RUN/apiserver-forward.sh"
	chmod +x "$RUN/apiserver-forward.sh"
	start_daemon apiserver-forward "$LOGS/apiserver-forward.log" \
		socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "EXEC:$RUN/apiserver-forward.sh"
	local tok
	tok=$(awk -F, -v u="$P-admin" '$2 == u {print $1}' "$LIB/pki/tokens.csv")
	pki_kubeconfig "$LIB/pki/admin-host.kubeconfig" "https://127.0.0.1:$port" "$tok"
	wait_for 10 "the root-namespace forwarder on 127.0.0.1:$port" \
		"$CACHE/kubectl" --kubeconfig "$LIB/pki/admin-host.kubeconfig" get --raw /readyz
}
