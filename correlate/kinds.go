package correlate

import (
	"fmt"
	"slices"
)

// Typed values of the result. Each marshals as the word the JSON schema
// documents, so reports compare values, never string literals.

// names maps an enum's values to their words; index = value.
type names []string

func (n names) text(v uint8, what string) string {
	if int(v) < len(n) && n[v] != "" {
		return n[v]
	}
	return fmt.Sprintf("%s(%d)", what, v)
}

func (n names) parse(b []byte, what string) (uint8, error) {
	if i := slices.Index(n, string(b)); i >= 0 {
		return uint8(i), nil
	}
	return 0, fmt.Errorf("unknown %s %q", what, b)
}

// Direction is the way a trace went along the path order.
type Direction uint8

const (
	Forward Direction = iota // up the path order (requests)
	Reverse                  // down it (replies)
)

var directionNames = names{"forward", "reverse"}

func (d Direction) String() string               { return directionNames.text(uint8(d), "direction") }
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
func (d *Direction) UnmarshalText(b []byte) error {
	return parseInto(d, directionNames, b, "direction")
}

// Flag marks what happened to one trace.
type Flag uint8

const (
	FlagLost Flag = iota
	FlagGap
	FlagReflection
	FlagDuplicate
	FlagNegativeDelta
	FlagFragment
	FlagOverMTU
)

var flagNames = names{"lost", "gap", "reflection", "duplicate", "negative-delta", "fragment", "over-mtu"}

func (f Flag) String() string                { return flagNames.text(uint8(f), "flag") }
func (f Flag) MarshalText() ([]byte, error)  { return []byte(f.String()), nil }
func (f *Flag) UnmarshalText(b []byte) error { return parseInto(f, flagNames, b, "flag") }

// AnomalyKind names a finding.
type AnomalyKind uint8

const (
	KindLoss AnomalyKind = iota
	KindGap
	KindReflection
	KindFlooding
	KindDuplicate
	KindFragmentation
	KindOverMTU
	KindUnansweredARP
	KindUnansweredEcho
	KindNegativeDelta
	KindKernelDrops
	KindNoSharedFrames
	KindClock
	KindBypass // a point that saw none of the frames crossing it one way (bypass.go)
)

var kindNames = names{"loss", "gap", "reflection", "flooding", "duplicate", "fragmentation", "over-mtu",
	"unanswered-arp", "unanswered-echo", "negative-delta", "kernel-drops", "no-shared-frames", "clock", "bypass"}

// Severity is what a finding of this kind means: expected behaviour worth
// knowing (Info) or a problem (Warning).
func (k AnomalyKind) Severity() Severity {
	switch k {
	case KindReflection, KindFragmentation, KindNegativeDelta, KindBypass:
		return Info
	}
	return Warning
}

func (k AnomalyKind) String() string               { return kindNames.text(uint8(k), "kind") }
func (k AnomalyKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *AnomalyKind) UnmarshalText(b []byte) error {
	return parseInto(k, kindNames, b, "anomaly kind")
}

// Severity says whether a finding is a problem (warning: exit status 1) or
// expected behaviour worth knowing (info: hairpin reflections).
type Severity uint8

const (
	Info Severity = iota
	Warning
)

var severityNames = names{"info", "warning"}

func (s Severity) String() string                { return severityNames.text(uint8(s), "severity") }
func (s Severity) MarshalText() ([]byte, error)  { return []byte(s.String()), nil }
func (s *Severity) UnmarshalText(b []byte) error { return parseInto(s, severityNames, b, "severity") }

// Field names a value outside the key that a hop rewrote.
type Field uint8

const (
	FieldSrcMAC Field = iota
	FieldDstMAC
	FieldTTL
	FieldSrcIP
	FieldDstIP
	FieldSrcPort
	FieldDstPort
	FieldEchoID
)

var fieldNames = names{"src_mac", "dst_mac", "ttl", "src_ip", "dst_ip", "src_port", "dst_port", "id"}

func (f Field) String() string                { return fieldNames.text(uint8(f), "field") }
func (f Field) MarshalText() ([]byte, error)  { return []byte(f.String()), nil }
func (f *Field) UnmarshalText(b []byte) error { return parseInto(f, fieldNames, b, "field") }

// MarshalText and UnmarshalText let Proto travel as its name ("icmp").
func (p Proto) MarshalText() ([]byte, error)  { return []byte(p.String()), nil }
func (p *Proto) UnmarshalText(b []byte) error { return parseInto(p, protoNames[:], b, "protocol") }

// MarshalText writes a LinkDir as "in" or "out"; DirUnknown is the zero
// value that `omitempty` leaves out.
func (d LinkDir) MarshalText() ([]byte, error)  { return []byte(linkDirNames[d]), nil }
func (d *LinkDir) UnmarshalText(b []byte) error { return parseInto(d, linkDirNames, b, "direction") }

var linkDirNames = names{"", "in", "out"}

func (d LinkDir) String() string { return linkDirNames.text(uint8(d), "dir") }

// MarshalText writes a MAC as colon-separated lower-case hex.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a MAC in the form MarshalText writes (any case).
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err == nil {
		*m = v
	}
	return err
}

func parseInto[T ~uint8](dst *T, n names, b []byte, what string) error {
	v, err := n.parse(b, what)
	if err == nil {
		*dst = T(v)
	}
	return err
}
