package report

// Who owns which MAC, for the labels every renderer puts on addresses.

import (
	"strings"

	"github.com/pathtrace/pathtrace/correlate"
)

// owners maps a lower-case MAC to who owns it. Discovery knows owners from
// netlink; an offline analysis only has what the correlator attached to the
// points, so both are merged (discovery wins: it read the kernel).
type owners map[string]string

func ownersOf(d Document) owners {
	o := owners{}
	if d.Result != nil {
		for _, p := range d.Result.Points {
			for _, m := range p.MACs {
				if m.Owner != "" {
					o[m.MAC.String()] = m.Owner
				}
			}
		}
	}
	if d.Path != nil {
		for mac, who := range d.Path.Owners {
			if who != "" {
				o[strings.ToLower(mac)] = who
			}
		}
	}
	return o
}

// short keeps an owner's leading name: "pod1-veth (node1 veth9903a3d4)" →
// "pod1-veth", so hop rows stay within one screen; the Points and Path
// sections show the full owner.
func short(owner string) string {
	if i := strings.Index(owner, " ("); i > 0 {
		return owner[:i]
	}
	return owner
}

// label is "mac (owner)" with the short owner, or the bare MAC.
func (o owners) label(mac string) string {
	if who := o[strings.ToLower(mac)]; who != "" {
		return mac + " (" + short(who) + ")"
	}
	return mac
}

// full is "mac (owner)" with the whole owner string.
func (o owners) full(mac string) string {
	if who := o[strings.ToLower(mac)]; who != "" {
		return mac + " (" + who + ")"
	}
	return mac
}

func (o owners) optMAC(m correlate.OptMAC) string {
	if !m.Valid {
		return "-"
	}
	return o.label(m.V.String())
}
