//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sink serves three kinds of connection:
//   - one that sends nothing and closes (a connect-time probe);
//   - "recv\n" then bytes until EOF: the sink answers one JSON line with the
//     bytes and the seconds from the first byte to EOF;
//   - "send N\n": the sink sends N bytes and closes.
func cmdSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	listen := fs.String("listen", "", "address to listen on")
	timeout := fs.Duration("timeout", 10*time.Minute, "exit after this long")
	maxConns := fs.Int("max-conns", 10000, "exit after this many connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	time.AfterFunc(*timeout, func() { ln.Close() })
	for i := 0; i < *maxConns; i++ {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go serveSink(c)
	}
	return nil
}

type xferResult struct {
	Dir     string  `json:"dir"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Mbit    float64 `json:"mbit"`
}

func serveSink(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	r := bufio.NewReaderSize(c, 1<<16)
	line, err := r.ReadString('\n')
	if err != nil {
		return // a connect probe
	}
	switch {
	case line == "recv\n":
		n, secs := readTimed(r)
		res := xferResult{Dir: "up", Bytes: n, Seconds: secs}
		if secs > 0 {
			res.Mbit = float64(n) * 8 / secs / 1e6
		}
		b, _ := json.Marshal(res)
		_, _ = c.Write(append(b, '\n'))
	case strings.HasPrefix(line, "send "):
		n, err := strconv.ParseInt(strings.TrimSpace(line[5:]), 10, 64)
		if err != nil || n < 0 || n > 16<<30 {
			return
		}
		buf := make([]byte, 1<<16)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for n > 0 {
			k := int64(len(buf))
			if n < k {
				k = n
			}
			w, err := c.Write(buf[:k])
			if err != nil {
				return
			}
			n -= int64(w)
		}
	}
}

// readTimed reads to EOF; seconds run from the first byte to EOF.
func readTimed(r io.Reader) (int64, float64) {
	buf := make([]byte, 1<<16)
	var n int64
	var first time.Time
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if n == 0 {
				first = time.Now()
			}
			n += int64(k)
		}
		if err != nil {
			break
		}
	}
	if n == 0 {
		return 0, 0
	}
	return n, time.Since(first).Seconds()
}

func cmdXfer(args []string) error {
	fs := flag.NewFlagSet("xfer", flag.ContinueOnError)
	to := fs.String("to", "", "sink address")
	dir := fs.String("dir", "down", "up: send to the sink; down: receive from it")
	size := fs.String("bytes", "8MiB", "bytes to transfer")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", *to, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	var res xferResult
	switch *dir {
	case "down":
		if _, err := fmt.Fprintf(c, "send %d\n", n); err != nil {
			return err
		}
		got, secs := readTimed(c)
		res = xferResult{Dir: "down", Bytes: got, Seconds: secs}
		if secs > 0 {
			res.Mbit = float64(got) * 8 / secs / 1e6
		}
		if got != n {
			return fmt.Errorf("received %d of %d bytes", got, n)
		}
	case "up":
		if _, err := io.WriteString(c, "recv\n"); err != nil {
			return err
		}
		buf := make([]byte, 1<<16)
		for left := n; left > 0; {
			k := int64(len(buf))
			if left < k {
				k = left
			}
			w, err := c.Write(buf[:k])
			if err != nil {
				return err
			}
			left -= int64(w)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("no answer from the sink: %w", err)
		}
		if err := json.Unmarshal(line, &res); err != nil {
			return err
		}
		if res.Bytes != n {
			return fmt.Errorf("sink received %d of %d bytes", res.Bytes, n)
		}
	default:
		return errors.New("--dir up or down")
	}
	res.Seconds, res.Mbit = r3(res.Seconds), r3(res.Mbit)
	return json.NewEncoder(os.Stdout).Encode(res)
}

type rttResult struct {
	To       string  `json:"to"`
	N        int     `json:"n"`
	MinMs    float64 `json:"min_ms"`
	MedianMs float64 `json:"median_ms"`
	MeanMs   float64 `json:"mean_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func cmdRTT(args []string) error {
	fs := flag.NewFlagSet("rtt", flag.ContinueOnError)
	to := fs.String("to", "", "address of a listening TCP socket")
	count := fs.Int("count", 20, "connects")
	interval := fs.Duration("interval", 20*time.Millisecond, "pause between connects")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 || *count > 10000 {
		return errors.New("--count 1..10000")
	}
	var ms []float64
	for i := 0; i < *count; i++ {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", *to, 5*time.Second)
		if err != nil {
			return err
		}
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		c.Close()
		time.Sleep(*interval)
	}
	slices.Sort(ms)
	res := rttResult{To: *to, N: len(ms), MinMs: r3(ms[0]), MedianMs: r3(median(ms)), MaxMs: r3(ms[len(ms)-1])}
	for _, v := range ms {
		res.MeanMs += v / float64(len(ms))
	}
	res.MeanMs = r3(res.MeanMs)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// median of sorted values.
func median(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
