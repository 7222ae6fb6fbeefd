//go:build linux

// Command tbtool is the netns testbed's helper (bench/testbed/run.sh): the bits
// that are awkward in bash.
//
//	tbtool run --stats F [--at UNIXNS] [--stdout F] [--stderr F] -- CMD...   start CMD at a common moment,
//	                                                   record when it printed its first line, its CPU and exit
//	tbtool sink --listen ADDR [--timeout D]          TCP endpoint for rtt and xfer
//	tbtool rtt --to ADDR [--count N]                 TCP connect times (one RTT each)
//	tbtool xfer --to ADDR --dir up|down --bytes N     one measured bulk transfer (goodput at the receiver)
//	tbtool mkfile --size SIZE --out FILE             deterministic pseudo-random file; prints its sha256
//	tbtool size SIZE                                 64MiB -> 67108864
//	tbtool cpusnap [--pids P,P]                      /proc/stat and per-PID CPU seconds, as JSON
//	tbtool summarize ...                             one system run -> the JSON line (see summarize.go)
//	tbtool aggregate FILE                            run lines -> median line per system + summary line
//	tbtool churnplan --peers N --frac F --file-bytes B --edge-up --peer-up --peer-down [--seed S]
//	                                                 seeded victims and moments, in [5 %, 80 %] of the fluid bound
//	tbtool churn --plan F --at UNIXNS --stats-dir D --out F   SIGKILL the victims at their moments (scenario.go)
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"run":       cmdRun,
		"sink":      cmdSink,
		"rtt":       cmdRTT,
		"xfer":      cmdXfer,
		"mkfile":    cmdMkfile,
		"size":      cmdSize,
		"cpusnap":   cmdCPUSnap,
		"summarize": cmdSummarize,
		"aggregate": cmdAggregate,
		"churnplan": cmdChurnPlan,
		"churn":     cmdChurn,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "tbtool %s: %v\n", os.Args[1], err)
		if ee, ok := err.(exitError); ok {
			os.Exit(int(ee))
		}
		os.Exit(1)
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tbtool run|sink|rtt|xfer|mkfile|size|cpusnap|summarize|aggregate|churnplan|churn ... (see the source's doc comment)")
	os.Exit(2)
}
