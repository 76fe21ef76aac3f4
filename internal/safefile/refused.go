package safefile

import (
	"fmt"
	"os/user"
	"strconv"
)

// Reason is why a folder is refused.
type Reason int

const (
	// ForeignOwner: the folder belongs to a user other than root and the
	// one pathtrace runs for, who could swap what is written there.
	ForeignOwner Reason = iota + 1
	// WritableByOthers: group or others may write the folder and it is not
	// a sticky folder of ours, so anyone there can replace or plant names.
	WritableByOthers
	// UntrustedLink: a symbolic link on the way sits in a folder others can
	// write; following it would go wherever they point it.
	UntrustedLink
	// NotFolder: a name on the way is not a folder.
	NotFolder
	// Replaced: a folder pathtrace had just created was swapped for
	// another before it could be opened.
	Replaced
)

func (r Reason) String() string {
	switch r {
	case ForeignOwner:
		return "it belongs to another user"
	case WritableByOthers:
		return "others can write it"
	case UntrustedLink:
		return "it is a symbolic link in a folder others can write"
	case NotFolder:
		return "it is not a folder"
	case Replaced:
		return "it was replaced while being created"
	}
	return "reason " + strconv.Itoa(int(r))
}

// RefusedError is a folder pathtrace will not write into. Error() is one
// line: the path, why, and the flag that accepts it anyway, if any.
type RefusedError struct {
	Path     string
	Reason   Reason
	Detail   string // "mode 0777", "owner uid 1001 (bob)"
	Override string // flag that accepts the folder; "" when none does
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("%s refused: %s", e.Path, e.Reason)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	switch {
	case e.Reason == UntrustedLink:
		s += ": give the folder's real path"
	case e.Override != "":
		s += fmt.Sprintf(": use a folder of your own, or %s to write there anyway", e.Override)
	}
	return s
}

// ownerName is "uid N (name)" for messages.
func ownerName(uid uint32) string {
	s := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}
