package main

import (
	"fmt"

	"github.com/edgeswarm/edgeswarm/internal/units"
)

// crowdFlags are the flags `demo` and `sim` share to describe a flash
// crowd: the object size, the link rates and the chunk size.
type crowdFlags struct {
	size, edgeUp, peerUp, peerDown, chunk string
}

// crowd is what crowdFlags parse to; rates in bit/s, chunk 0 = per object.
type crowd struct {
	size                     int64
	edgeUp, peerUp, peerDown float64
	chunk                    int
}

// parse checks every flag and names the one at fault; every rate must be
// finite because the fluid bound divides by it.
func (f crowdFlags) parse() (crowd, error) {
	var c crowd
	var err error
	if c.size, err = units.ParseBytes(f.size); err != nil {
		return c, fmt.Errorf("--size: %w", err)
	}
	for _, r := range []struct {
		flag, val string
		dst       *float64
	}{{"--edge-up", f.edgeUp, &c.edgeUp}, {"--peer-up", f.peerUp, &c.peerUp}, {"--peer-down", f.peerDown, &c.peerDown}} {
		if *r.dst, err = units.ParseRate(r.val); err != nil {
			return c, fmt.Errorf("%s: %w", r.flag, err)
		}
		if *r.dst == 0 {
			return c, fmt.Errorf("%s: a finite rate is needed", r.flag)
		}
	}
	if f.chunk != "" && f.chunk != "0" {
		cs, err := units.ParseBytes(f.chunk)
		if err != nil {
			return c, fmt.Errorf("--chunk-size: %w", err)
		}
		c.chunk = int(cs)
	}
	return c, nil
}
