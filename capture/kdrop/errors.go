package kdrop

// UnavailableError says, in one line, why the kernel's drop reasons cannot
// be watched on this machine (no BTF, missing capabilities, a kernel
// without the reason field, a verifier refusal). The caller prints it as a
// note and runs without drop reasons; Unwrap gives the cause's details.
type UnavailableError struct {
	What string // what is missing, e.g. "missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
	Err  error  // the underlying error, if any
}

func (e *UnavailableError) Error() string {
	return "kernel drop reasons unavailable: " + e.What
}

func (e *UnavailableError) Unwrap() error { return e.Err }
