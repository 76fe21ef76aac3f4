package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pathtrace/pathtrace/discover/k8s"
)

// Sweep deletes the agent pods of runs that are over: a coordinator killed
// before it could delete them (SIGKILL, a lost machine). A run is over
// when its deadline has passed (whoever started it), when its coordinator
// ran on this machine and has exited (Owner.Gone), or when its pods have
// ended (the kubelet stops them at activeDeadlineSeconds). The agents of a
// run still going, here or elsewhere, are left alone. It returns one line
// per pod removed.
func Sweep(ctx context.Context, conn *k8s.Conn, ns string) ([]string, error) {
	pods := conn.Client.Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: AgentSelector})
	if apierrors.IsNotFound(err) {
		return nil, nil // no namespace: nothing left over; Start says what to do
	}
	if err != nil {
		return nil, conn.APIError(err, "list", "pods", ns, Manifest)
	}
	now := time.Now()
	var names, notes []string
	for i := range list.Items {
		p := &list.Items[i]
		why := over(p, now)
		if why == "" {
			continue
		}
		names = append(names, p.Name)
		notes = append(notes, fmt.Sprintf("removed agent pod %s/%s on node %s of an earlier run (%s)", ns, p.Name, p.Spec.NodeName, why))
	}
	if len(names) == 0 {
		return nil, nil
	}
	if err := deletePods(conn, ns, AgentSelector, names); err != nil {
		var fr *ForcedRemoval
		if errors.As(err, &fr) {
			return append(notes, fr.Error()), nil // gone: the run goes on
		}
		return notes, fmt.Errorf("removing a killed run's agent pods: %w", err)
	}
	return notes, nil
}

// over says why an agent pod's run is over, "" while it may be going.
func over(p *corev1.Pod, now time.Time) string {
	owner, hasOwner := parseOwner(p.Annotations[AnnOwner])
	deadline, hasDeadline := parseDeadline(p.Annotations[AnnDeadline])
	switch {
	case p.DeletionTimestamp != nil:
		return "" // being deleted already
	case !hasOwner || !hasDeadline:
		return "no owner or deadline recorded"
	case now.After(deadline):
		return fmt.Sprintf("its deadline %s has passed; started by %s", deadline.Format(time.RFC3339), owner)
	case owner.Gone():
		return fmt.Sprintf("its coordinator %s has exited", owner)
	case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
		return fmt.Sprintf("it has ended (%s); started by %s", p.Status.Phase, owner)
	}
	return ""
}
