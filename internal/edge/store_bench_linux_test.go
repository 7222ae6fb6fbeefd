package edge

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkHitServerCPU runs the edge as a child process and reports the
// CPU time (user + system) the edge process alone spent per cache hit,
// server-cpu-ms/op, which the in-process BenchmarkHit cannot separate from
// its client's. Modes as in BenchmarkHit: copy (the path before sendfile),
// sendfile, verify.
//
//	go test ./internal/edge -run '^$' -bench BenchmarkHitServerCPU -benchtime 2s -count 5
func BenchmarkHitServerCPU(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		for _, mode := range []string{"copy", "sendfile", "verify"} {
			b.Run(fmt.Sprintf("%dMiB/%s", size>>20, mode), func(b *testing.B) {
				clk := newClock()
				o := newOrigin(b, clk)
				o.set("/obj", &object{body: randomBody(uint64(size), size), header: map[string]string{"Cache-Control": "max-age=86400"}})
				cmd, url := startEdgeProcess(b, o.srv.URL, b.TempDir(), "EDGE_MODE="+mode)
				hc := &http.Client{}
				defer hc.CloseIdleConnections()
				get := func() {
					resp, err := hc.Get(url + "/obj")
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != int64(size) {
						b.Fatalf("%d bytes, err %v", n, err)
					}
				}
				get() // fill
				get() // verify once
				b.SetBytes(int64(size))
				cpu := childCPU(b, cmd.Process.Pid)
				for b.Loop() {
					get()
				}
				b.ReportMetric(float64(childCPU(b, cmd.Process.Pid)-cpu)/float64(time.Millisecond)/float64(b.N), "server-cpu-ms/op")
			})
		}
	}
}

// childCPU reads a process's user + system CPU time from /proc.
func childCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at state.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}
