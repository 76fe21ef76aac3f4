package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pathtrace/pathtrace/discover"
	"github.com/pathtrace/pathtrace/discover/k8s"
	"github.com/pathtrace/pathtrace/pipeline"
)

// captureEnds is what an agent captures: this node's part of the path,
// which endpoint is here, and the node's name where Kubernetes knows it.
type captureEnds struct {
	path  *discover.Path // discover.NodeSide's: from the endpoint here out to the underlay
	local pipeline.Side
	node  string
}

// nodeLabel names the node in messages.
func (e *captureEnds) nodeLabel() string {
	if e.node != "" {
		return e.node
	}
	if n := len(e.path.Points); n > 0 && e.path.Points[n-1].Node != "" {
		return e.path.Points[n-1].Node
	}
	return "(this host)"
}

// end is one endpoint argument as the agent sees it.
type end struct {
	arg  string
	flag string
	ep   discover.Endpoint
	ip   bool // given as an address
	here bool // a namespace on this node
	done bool
}

// resolveEnds decides which endpoint is on this node and finds the path
// from it out of the node. A name (netns, pod, …) resolves as the tracer
// resolves it; a pod the resolver places on another node is the other
// end, by its IP. An address beside an endpoint found here is the other
// end as it is: no namespace on this node is searched for it (another
// lab, another cluster's pod network may hold the same address). Two
// addresses: the one a namespace here holds is this node's.
func (o *captureOptions) resolveEnds(ctx context.Context) (*captureEnds, error) {
	res := o.Resolver
	var kr *k8s.Resolver
	if res == nil {
		kr = o.kube.resolver()
		defer kr.Close()
		res = kr
	}
	ends := [2]*end{{arg: o.Src, flag: "--src"}, {arg: o.Dst, flag: "--dst"}}
	for _, e := range ends {
		if ip, err := netip.ParseAddr(e.arg); err == nil {
			e.ip, e.ep = true, discover.Remote(ip.Unmap())
			continue
		}
		if err := e.resolveName(res, kr); err != nil {
			return nil, err
		}
	}
	for i, e := range ends {
		other := ends[1-i]
		if e.done || (other.done && other.here) {
			continue // resolved, or the other end is this node's: taken as it is
		}
		ep, err := res.Resolve(e.arg)
		switch {
		case err == nil && ep.NetnsPath != "":
			e.ep, e.here = ep, true
		case err == nil:
			e.ep = ep // another node's pod, named by the API server
		case !errors.Is(err, discover.ErrNoMatch):
			return nil, fmt.Errorf("%s %s: %w", e.flag, e.arg, err)
		}
		e.done = true
	}
	src, dst := ends[0], ends[1]
	switch {
	case src.here && dst.here:
		return nil, fmt.Errorf("--src %s and --dst %s are both on this node: 'pathtrace --src %s --dst %s' traces them in one run", o.Src, o.Dst, o.Src, o.Dst)
	case !src.here && !dst.here:
		return nil, fmt.Errorf("neither --src %s nor --dst %s is on this node: run capture on the node of one of them (the other is given by its IP or pod name)", o.Src, o.Dst)
	}
	here, there, side := src, dst, pipeline.SideSrc
	if dst.here {
		here, there, side = dst, src, pipeline.SideDst
	}
	if here.ep.Service != nil {
		return nil, fmt.Errorf("%s %s: a Service; capture follows one pod: give the pod", here.flag, here.arg)
	}
	if !there.ep.IP.IsValid() {
		return nil, fmt.Errorf("%s %s: no address for the other node's endpoint", there.flag, there.arg)
	}
	var opts []discover.Option
	if n, ok := res.(discover.Namer); ok {
		opts = append(opts, discover.NetnsNames(n.NetnsNames()))
	}
	if n, ok := res.(discover.NodeNamer); ok {
		opts = append(opts, discover.NodeNames(n.NodeNames()))
	}
	path, err := discover.NodeSide(ctx, here.ep, there.ep.IP, opts...)
	if err != nil {
		return nil, fmt.Errorf("discover %s's side toward %s: %w", here.ep.Label, there.ep.IP, err)
	}
	path.Dst = there.ep
	path.Notes = append(append(path.Notes, here.ep.Notes...), there.ep.Notes...)
	e := &captureEnds{path: path, local: side}
	if kr != nil {
		e.node = kr.NodeName()
	}
	return e, nil
}

// resolveName resolves a name: here, or (a pod on another node) by its IP.
func (e *end) resolveName(res discover.Resolver, kr *k8s.Resolver) error {
	e.done = true
	ep, err := res.Resolve(e.arg)
	if err == nil {
		e.ep, e.here = ep, ep.NetnsPath != ""
		return nil
	}
	if kr != nil && errors.Is(err, discover.ErrNoMatch) {
		if peer, perr := kr.ResolvePeer(e.arg); perr == nil {
			e.ep = peer
			return nil
		}
	}
	return fmt.Errorf("%s %s: %w", e.flag, e.arg, err)
}
