package cli

import "github.com/pathtrace/pathtrace/internal/privs"

// The capability checks run before anything on the node is changed; they
// name each missing capability and what it is for (privs.Table says which
// step needs which, as measured). Offline analysis never checks.

func checkPrivileges() error { return privs.Require("a live trace", privs.LiveTrace...) }

func checkLabPrivileges() error { return privs.Require("the lab", privs.Lab...) }

func checkLabRawPrivileges() error {
	return privs.Require("the lab's ipip or ipsec tunnel", privs.LabRaw...)
}

func checkDemoPrivileges() error { return privs.Require("the demo", privs.Demo...) }
