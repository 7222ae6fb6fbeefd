//go:build linux

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// parseSize accepts 123, 64MiB, 1GiB, 500KB, 10MB (binary and decimal units).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1e3, "m": 1 << 20, "mib": 1 << 20,
		"mb": 1e6, "g": 1 << 30, "gib": 1 << 30, "gb": 1e9}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size unit in %q", s)
	}
	return int64(v * mult), nil
}

func cmdSize(args []string) error {
	if len(args) != 1 {
		return errors.New("want one SIZE")
	}
	n, err := parseSize(args[0])
	if err != nil {
		return err
	}
	fmt.Println(n)
	return nil
}

// mkfile writes SIZE pseudo-random bytes (ChaCha8, seed fixed by --seed) and
// prints the file's sha256.
func cmdMkfile(args []string) error {
	fs := flag.NewFlagSet("mkfile", flag.ContinueOnError)
	size := fs.String("size", "64MiB", "bytes")
	out := fs.String("out", "", "file to write")
	seed := fs.Uint64("seed", 1, "seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], *seed)
	rng := rand.NewChaCha8(key)
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rng, n); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
	return nil
}

// cpuSnap is /proc/stat's aggregate CPU line and the CPU seconds of some PIDs.
type cpuSnap struct {
	TimeNS int64              `json:"t_unix_ns"`
	Stat   map[string]float64 `json:"stat"` // seconds per field, all CPUs
	PIDs   map[string]float64 `json:"pids"` // utime+stime seconds
}

const clkTck = 100 // USER_HZ on Linux

var statFields = []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

func readCPUSnap(pids []string) (cpuSnap, error) {
	s := cpuSnap{Stat: map[string]float64{}, PIDs: map[string]float64{}}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, name := range statFields {
		if i+1 < len(f) {
			v, _ := strconv.ParseFloat(f[i+1], 64)
			s.Stat[name] = v / clkTck
		}
	}
	for _, p := range pids {
		if p == "" {
			continue
		}
		if v, err := procCPU(p); err == nil {
			s.PIDs[p] = v
		}
	}
	s.TimeNS = nowNS()
	return s, nil
}

// procCPU reads utime+stime of /proc/PID/stat (fields 14 and 15, after the
// parenthesised command name).
func procCPU(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("bad stat")
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck, nil
}

func cmdCPUSnap(args []string) error {
	fs := flag.NewFlagSet("cpusnap", flag.ContinueOnError)
	pids := fs.String("pids", "", "comma-separated PIDs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := readCPUSnap(strings.Split(*pids, ","))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(s)
}
