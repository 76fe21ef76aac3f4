// Command pause is the pod sandbox's process: it holds the pod's namespaces
// open and does nothing else. It is the test cluster's stand-in for
// registry.k8s.io/pause, which cannot be pulled here (no registry).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// As PID 1 of the pod it must reap orphans: with SIGCHLD set to SIG_IGN
	// the kernel reaps exited children itself (POSIX).
	signal.Ignore(syscall.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
