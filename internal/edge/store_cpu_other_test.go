//go:build !unix

package edge

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
