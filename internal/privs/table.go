package privs

// Step is one thing pathtrace does that the kernel may guard.
type Step int

const (
	ListNamespaces Step = iota + 1 // list /run/netns, open /run/netns/NAME
	OtherProcessNS                 // open /proc/PID/ns/net of another user's process
	EnterNamespace                 // setns into a network namespace (netlink handles, sockets there)
	PacketCapture                  // AF_PACKET socket with a TPACKET_V3 ring
	Promiscuous                    // PACKET_ADD_MEMBERSHIP PACKET_MR_PROMISC on a bridge
	SocketFilter                   // SO_ATTACH_FILTER, classic BPF
	Probe                          // raw ICMP/ICMPv6 socket for the echo probes
	Evidence                       // files in the --out folder
	HandEvidence                   // chown of the evidence to SUDO_UID
	LabNamespaces                  // unshare + bind mount of a netns under /run/netns
	LabLinks                       // create veths, bridges, addresses, routes by netlink
	LabState                       // state and lock files in /run/pathtrace
	Analyze                        // read saved captures
	DropReasons                    // load and attach a tracing BPF program with a ring buffer on kfree_skb
	DropLocation                   // read kernel addresses in /proc/kallsyms, to name where a frame was dropped
	LabTunnel                      // raw IP sockets of the two-node lab's userspace tunnels (ipip, ipsec)
)

// Need is what one step needs, why, and how that was established on this
// kernel (6.18, as uid 65534 with setpriv --ambient-caps, each capability
// removed in turn).
type Need struct {
	Step  Step
	Caps  []Cap
	What  string // the step, for messages and the README
	Found string // the experiment
}

// Table is every step. Steps with no Caps were tried without any.
var Table = []Need{
	{ListNamespaces, nil, "list and open named network namespaces",
		"/run/netns and its nsfs files are world-readable: resolved with none of the capabilities"},
	{OtherProcessNS, []Cap{SysPtrace}, "open another user's /proc/PID/ns/net during discovery",
		"--src PID of a root process without CAP_SYS_PTRACE: open /proc/PID/ns/net: permission denied; " +
			"discovery looks for namespaces through every process, and a pod's may be known only that way"},
	{EnterNamespace, []Cap{SysAdmin}, "enter network namespaces",
		"without CAP_SYS_ADMIN: netlink handle in /run/netns/NAME: set into network namespace: operation not permitted"},
	{PacketCapture, []Cap{NetRaw}, "capture with AF_PACKET sockets",
		"--passive without CAP_NET_RAW: socket AF_PACKET: operation not permitted"},
	{Promiscuous, nil, "capture a bridge in promiscuous mode (socket membership)",
		"with only CAP_NET_RAW and CAP_SYS_ADMIN the bridge's promiscuity count went to 1 during the capture; CAP_NET_ADMIN is not needed"},
	{SocketFilter, nil, "attach the classic BPF capture filter",
		"every capture with only CAP_NET_RAW and CAP_SYS_ADMIN attached it"},
	{Probe, []Cap{NetRaw}, "send ICMP probes from a raw socket",
		"without CAP_NET_RAW: raw ICMP socket: operation not permitted"},
	{Evidence, nil, "write evidence into a folder of the user's own",
		"uid 65534 wrote every evidence file into its own folder with none; CAP_DAC_READ_SEARCH was needed by no step"},
	{HandEvidence, []Cap{Chown}, "hand the evidence to the sudo user",
		"only as root under sudo (root holds it); not checked"},
	{LabNamespaces, []Cap{SysAdmin, DacOverride}, "create network namespaces under /run/netns",
		"without CAP_SYS_ADMIN: make /run/netns shared: operation not permitted; " +
			"without CAP_DAC_OVERRIDE: /run/netns and /run/pathtrace are root's 0755/0700: permission denied"},
	{LabLinks, []Cap{NetAdmin, SysAdmin}, "create links and addresses in the lab's namespaces",
		"without CAP_NET_ADMIN: mark lo: operation not permitted"},
	{LabState, []Cap{DacOverride}, "keep the lab's state in /run/pathtrace",
		"without CAP_DAC_OVERRIDE: open /run/pathtrace/lab-P.lock: permission denied"},
	{Analyze, nil, "analyse saved captures", "never checked: runs as any user"},
	{DropReasons, []Cap{BPF, Perfmon}, "load the drop-reason tracer (BPF program on kfree_skb with a ring buffer)",
		"cilium/ebpf, raw_tp and tp_btf on kfree_skb: CAP_BPF alone creates the ring buffer but the load fails " +
			"(operation not permitted); CAP_BPF+CAP_PERFMON load and attach both (unprivileged_bpf_disabled=2)"},
	{DropLocation, []Cap{Syslog}, "name the kernel function that dropped a frame",
		"/proc/kallsyms shows zero addresses without CAP_SYSLOG (kptr_restrict=0, perf_event_paranoid=2)"},
	{LabTunnel, []Cap{NetRaw}, "run the two-node lab's ipip and ipsec tunnels (raw IP sockets)",
		"lab up --nodes 2 --backend ipip with the lab's capabilities but CAP_NET_RAW: raw IPPROTO_IPIP socket: operation not permitted; " +
			"the udp and geneve tunnels (UDP sockets, ports above 1024) need nothing more than the lab"},
}

// Steps of each command.
var (
	LiveTrace = []Step{ListNamespaces, OtherProcessNS, EnterNamespace, PacketCapture, Promiscuous, SocketFilter, Probe, Evidence}
	Lab       = []Step{LabNamespaces, LabLinks, LabState}
	LabRaw    = append(append([]Step{}, Lab...), LabTunnel) // a two-node lab whose tunnels use raw sockets
	Demo      = append(append([]Step{}, Lab...), LiveTrace...)
)

func (s Step) need() *Need {
	for i := range Table {
		if Table[i].Step == s {
			return &Table[i]
		}
	}
	return nil
}

// Caps is what the step needs.
func (s Step) Caps() []Cap {
	if n := s.need(); n != nil {
		return n.Caps
	}
	return nil
}

func (s Step) String() string {
	if n := s.need(); n != nil {
		return n.What
	}
	return "step"
}

// For is every capability the steps need, in bit order.
func For(steps ...Step) []Cap {
	var s Set
	for _, st := range steps {
		s |= Of(st.Caps()...)
	}
	return s.Caps()
}
