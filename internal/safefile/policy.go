// Package safefile creates the files pathtrace writes (evidence, lab state)
// so that no one else's link, FIFO or folder can redirect them. pathtrace
// runs as root, often in a shared scratch folder: every file is opened
// relative to a directory handle without following links, created under a
// fresh temporary name (O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and renamed into
// place - a rename replaces a name, never what a link points to - and the
// folder itself is checked: owner, mode, sticky bit.
package safefile

import (
	"os"
	"slices"
	"strconv"
)

// Owner is a uid and gid to hand files to.
type Owner struct {
	UID, GID int
}

// Invoker is the user pathtrace runs for when it runs under sudo: SUDO_UID
// and SUDO_GID, trusted only when the real uid is root (sudo sets both; a
// user running a binary with file capabilities cannot borrow another uid).
func Invoker() (Owner, bool) {
	if os.Getuid() != 0 {
		return Owner{}, false
	}
	uid, err1 := strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, err2 := strconv.Atoi(os.Getenv("SUDO_GID"))
	if err1 != nil || err2 != nil || uid <= 0 || gid < 0 {
		return Owner{}, false
	}
	return Owner{uid, gid}, true
}

// Policy says which folders are acceptable and who gets what is created.
type Policy struct {
	// Trusted are the uids a folder may belong to; root and the effective
	// uid always are.
	Trusted []int
	// AllowShared accepts a folder others can write or another user owns
	// (files are still never created through links).
	AllowShared bool
	// Override names the flag that sets AllowShared, for refusals; "" when
	// nothing overrides.
	Override string
	// HandTo, when set, is given every file and folder created (fchown):
	// the sudo user, so they can read and remove the evidence.
	HandTo *Owner
}

// UserPolicy is for files written for the user (evidence): their folders
// and root's are trusted, and under sudo what is created is handed to them.
func UserPolicy(allowShared bool, override string) Policy {
	p := Policy{AllowShared: allowShared, Override: override}
	if o, ok := Invoker(); ok {
		p.Trusted = []int{o.UID}
		p.HandTo = &o
	}
	return p
}

// SystemPolicy is for pathtrace's own state (/run/pathtrace): only root's
// or the effective user's folders, nothing handed over.
func SystemPolicy() Policy { return Policy{} }

// trusted reports whether uid may own the folders written into.
func (p Policy) trusted(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid() || slices.Contains(p.Trusted, int(uid))
}
