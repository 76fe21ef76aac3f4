package nftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Family is an nftables table family.
type Family uint8

const (
	FamilyInet   Family = unix.NFPROTO_INET
	FamilyIPv4   Family = unix.NFPROTO_IPV4
	FamilyARP    Family = unix.NFPROTO_ARP
	FamilyNetdev Family = unix.NFPROTO_NETDEV
	FamilyBridge Family = unix.NFPROTO_BRIDGE
	FamilyIPv6   Family = unix.NFPROTO_IPV6
)

// String is the family as nft names it.
func (f Family) String() string {
	switch f {
	case FamilyInet:
		return "inet"
	case FamilyIPv4:
		return "ip"
	case FamilyARP:
		return "arp"
	case FamilyNetdev:
		return "netdev"
	case FamilyBridge:
		return "bridge"
	case FamilyIPv6:
		return "ip6"
	}
	return fmt.Sprintf("family%d", uint8(f))
}

// TraceType says what a trace event reports.
type TraceType uint32

const (
	TraceUnspec TraceType = iota
	TracePolicy           // the chain's policy decided (no rule matched)
	TraceReturn           // the chain ended without a verdict, back to the caller
	TraceRule             // a rule matched
)

func (t TraceType) String() string {
	switch t {
	case TracePolicy:
		return "policy"
	case TraceReturn:
		return "return"
	case TraceRule:
		return "rule"
	}
	return fmt.Sprintf("tracetype%d", uint32(t))
}

// Verdict is a netfilter verdict code (NF_* and NFT_*).
type Verdict int32

const (
	VerdictDrop     Verdict = 0
	VerdictAccept   Verdict = 1
	VerdictStolen   Verdict = 2
	VerdictQueue    Verdict = 3
	VerdictRepeat   Verdict = 4
	VerdictStop     Verdict = 5
	VerdictContinue Verdict = -1
	VerdictBreak    Verdict = -2
	VerdictJump     Verdict = -3
	VerdictGoto     Verdict = -4
	VerdictReturn   Verdict = -5
)

func (v Verdict) String() string {
	// NF_* verdicts keep extra bits (queue number) above the low byte.
	code := v
	if v >= 0 {
		code = v & 0xff
	}
	switch code {
	case VerdictDrop:
		return "drop"
	case VerdictAccept:
		return "accept"
	case VerdictStolen:
		return "stolen"
	case VerdictQueue:
		return "queue"
	case VerdictRepeat:
		return "repeat"
	case VerdictStop:
		return "stop"
	case VerdictContinue:
		return "continue"
	case VerdictBreak:
		return "break"
	case VerdictJump:
		return "jump"
	case VerdictGoto:
		return "goto"
	case VerdictReturn:
		return "return"
	}
	return fmt.Sprintf("verdict%d", int32(v))
}

// Event is one nftables trace event (NFT_MSG_TRACE): a traced packet met a
// rule, a chain's end, or a chain's policy.
type Event struct {
	Time      time.Time // when pathtrace received it
	ID        uint32    // trace id: the same for all events of one packet in one hook
	Family    Family    // of the table
	Table     string
	Chain     string
	Handle    uint64 // the rule's handle (TraceRule)
	Type      TraceType
	Verdict   Verdict
	Target    string // chain of a jump/goto verdict
	NFProto   Family // the packet's protocol family (ip, ip6 in an inet table)
	Policy    Verdict
	HasPolicy bool
	Iif, Oif  int // ifindex in the traced namespace; 0 if none
	IifType   uint16
	OifType   uint16
	Mark      uint32
	LL        []byte // link-layer header, if the hook has one
	Network   []byte // network header on (at most 40 bytes with options)
	Transport []byte // transport header on (at most 40 bytes)

	// Rule, for a drop: "<family> <table> <chain> handle <N>: <rule text>",
	// or "<family> <table> <chain> policy drop". RuleErr says why it is
	// missing (the rule was deleted before it could be read, ...).
	Rule    string
	RuleErr error
}

// Dropped reports whether this event is the packet's drop: a rule's drop
// verdict (also "reject", which drops after replying) or a drop policy.
func (e Event) Dropped() bool {
	switch e.Type {
	case TraceRule:
		return e.Verdict >= 0 && e.Verdict&0xff == VerdictDrop
	case TracePolicy:
		return e.HasPolicy && e.Policy >= 0 && e.Policy&0xff == VerdictDrop
	}
	return false
}

// parseTrace decodes an NFT_MSG_TRACE message body (nfgenmsg + attributes).
// Its bytes come from the kernel but are treated as untrusted: any length
// is checked.
func parseTrace(b []byte) (Event, error) {
	if len(b) < 4 {
		return Event{}, errors.New("trace message shorter than its nfgenmsg header")
	}
	ev := Event{Family: Family(b[0])}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return Event{}, fmt.Errorf("trace attributes: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TRACE_TABLE:
			ev.Table = ad.String()
		case unix.NFTA_TRACE_CHAIN:
			ev.Chain = ad.String()
		case unix.NFTA_TRACE_RULE_HANDLE:
			ev.Handle = ad.Uint64()
		case unix.NFTA_TRACE_TYPE:
			ev.Type = TraceType(ad.Uint32())
		case unix.NFTA_TRACE_ID:
			ev.ID = ad.Uint32()
		case unix.NFTA_TRACE_VERDICT:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				nd.ByteOrder = binary.BigEndian
				for nd.Next() {
					switch nd.Type() {
					case unix.NFTA_VERDICT_CODE:
						ev.Verdict = Verdict(int32(nd.Uint32()))
					case unix.NFTA_VERDICT_CHAIN:
						ev.Target = nd.String()
					}
				}
				return nil
			})
		case unix.NFTA_TRACE_LL_HEADER:
			ev.LL = ad.Bytes()
		case unix.NFTA_TRACE_NETWORK_HEADER:
			ev.Network = ad.Bytes()
		case unix.NFTA_TRACE_TRANSPORT_HEADER:
			ev.Transport = ad.Bytes()
		case unix.NFTA_TRACE_IIF:
			ev.Iif = int(ad.Uint32())
		case unix.NFTA_TRACE_IIFTYPE:
			ev.IifType = ad.Uint16()
		case unix.NFTA_TRACE_OIF:
			ev.Oif = int(ad.Uint32())
		case unix.NFTA_TRACE_OIFTYPE:
			ev.OifType = ad.Uint16()
		case unix.NFTA_TRACE_MARK:
			ev.Mark = ad.Uint32()
		case unix.NFTA_TRACE_NFPROTO:
			ev.NFProto = Family(ad.Uint32())
		case unix.NFTA_TRACE_POLICY:
			ev.Policy = Verdict(int32(ad.Uint32()))
			ev.HasPolicy = true
		}
	}
	if err := ad.Err(); err != nil {
		return Event{}, fmt.Errorf("trace attributes: %w", err)
	}
	if ev.Table == "" || ev.Chain == "" {
		return Event{}, errors.New("trace event without table or chain")
	}
	return ev, nil
}
