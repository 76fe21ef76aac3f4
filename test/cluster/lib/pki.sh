# shellcheck shell=bash
# Certificates, tokens and kubeconfigs, made fresh by every `up` in $LIB/pki.
# One CA signs: the API server's serving cert, its client cert towards the
# kubelets, and each kubelet's serving cert (so the API server verifies the
# kubelet it execs into). Users authenticate with static tokens.

pki_make() {
	local nodes=$1 pki=$LIB/pki n
	mkdir -p "$pki"
	chmod 700 "$pki"
	pki_key "$pki/ca"
	openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=$P-test-ca" -days 30 -out "$pki/ca.crt" 2>/dev/null ||
		die "openssl: CA"
	pki_cert apiserver "/CN=kube-apiserver" serverAuth \
		"IP:$CP_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	pki_cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" clientAuth ""
	for ((n = 1; n <= nodes; n++)); do
		pki_cert "node$n-kubelet" "/CN=$(node_name "$n")" serverAuth "IP:$(node_ip "$n"),DNS:$(node_name "$n")"
	done
	# The service-account token signing key (ES256).
	pki_key "$pki/sa"
	openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null || die "openssl: sa.pub"

	# token,user,uid,"group1,group2": the Node authorizer wants system:node:NAME
	# in system:nodes; system:kube-proxy is bound to system:node-proxier by the
	# API server's bootstrap policy.
	local admin_tok proxy_tok
	admin_tok=$(openssl rand -hex 16)
	proxy_tok=$(openssl rand -hex 16)
	{
		echo "$admin_tok,$P-admin,$P-admin,system:masters"
		echo "$proxy_tok,system:kube-proxy,$P-kube-proxy"
		for ((n = 1; n <= nodes; n++)); do
			local tok
			tok=$(openssl rand -hex 16)
			echo "$tok,system:node:$(node_name "$n"),$P-node$n,system:nodes"
			pki_kubeconfig "$pki/node$n.kubeconfig" "https://$CP_IP:$APISERVER_PORT" "$tok"
		done
	} >"$pki/tokens.csv"
	pki_kubeconfig "$ADMIN_KUBECONFIG" "https://$CP_IP:$APISERVER_PORT" "$admin_tok"
	pki_kubeconfig "$pki/kube-proxy.kubeconfig" "https://$CP_IP:$APISERVER_PORT" "$proxy_tok"
}

pki_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null || die "openssl: key $1"; }

# pki_cert NAME SUBJECT EXTENDEDKEYUSAGE SANS
pki_cert() {
	local name=$1 subj=$2 eku=$3 sans=$4 pki=$LIB/pki ext
	pki_key "$pki/$name"
	ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$eku"
	[[ -n $sans ]] && ext+="
subjectAltName=$sans"
	openssl req -new -key "$pki/$name.key" -subj "$subj" 2>/dev/null |
		openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
			-extfile <(echo "$ext") -out "$pki/$name.crt" 2>/dev/null || die "openssl: cert $name"
}

# pki_kubeconfig FILE SERVER TOKEN
pki_kubeconfig() {
	cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $P
  cluster:
    server: $2
    certificate-authority: $LIB/pki/ca.crt
users:
- name: $P
  user:
    token: $3
contexts:
- name: $P
  context: {cluster: $P, user: $P}
current-context: $P
KC
}
