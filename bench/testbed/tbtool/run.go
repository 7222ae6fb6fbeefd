//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// runStats is what `tbtool run` writes to --stats: once right after the start
// (Running true, so that cleanup knows the child's PID) and again at the end.
type runStats struct {
	Running     bool     `json:"running"`
	Cmd         []string `json:"cmd"`
	WrapperPID  int      `json:"wrapper_pid"`
	ChildPID    int      `json:"child_pid"`
	AtNS        int64    `json:"at_unix_ns"`
	StartNS     int64    `json:"start_unix_ns"`
	FirstLineNS int64    `json:"first_line_unix_ns,omitempty"`
	ExitNS      int64    `json:"exit_unix_ns,omitempty"`
	ExitCode    int      `json:"exit_code"`
	Signaled    string   `json:"signaled,omitempty"`
	UserS       float64  `json:"user_s"`
	SysS        float64  `json:"sys_s"`
	MaxRSSKB    int64    `json:"max_rss_kb"`
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	statsPath := fs.String("stats", "", "stats JSON file (required)")
	at := fs.Int64("at", 0, "start the command at this wall-clock time, unix nanoseconds (0: now)")
	stdoutPath := fs.String("stdout", "", "copy the command's standard output here (default: inherit)")
	stderrPath := fs.String("stderr", "", "the command's standard error (default: inherit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 || *statsPath == "" {
		return errors.New("want --stats FILE -- CMD [ARGS...]")
	}
	// Signals that arrive before the start cancel it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if *at > 0 {
		if d := time.Until(time.Unix(0, *at)); d > 0 {
			select {
			case <-time.After(d):
			case s := <-sigs:
				_ = writeJSONFile(*statsPath, runStats{Cmd: argv, WrapperPID: os.Getpid(), AtNS: *at, ExitCode: -1, Signaled: s.String()})
				return exitError(143)
			}
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = nil
	var outFile *os.File
	var pipe io.ReadCloser
	var err error
	if *stdoutPath != "" {
		if outFile, err = os.Create(*stdoutPath); err != nil {
			return err
		}
		defer outFile.Close()
		if pipe, err = cmd.StdoutPipe(); err != nil {
			return err
		}
	} else {
		cmd.Stdout = os.Stdout
	}
	if *stderrPath != "" {
		ef, err := os.Create(*stderrPath)
		if err != nil {
			return err
		}
		defer ef.Close()
		cmd.Stderr = ef
	} else {
		cmd.Stderr = os.Stderr
	}
	st := runStats{Running: true, Cmd: argv, WrapperPID: os.Getpid(), AtNS: *at}
	if err := cmd.Start(); err != nil {
		st.Running = false
		st.ExitCode = 127
		_ = writeJSONFile(*statsPath, st)
		return err
	}
	st.StartNS = time.Now().UnixNano()
	st.ChildPID = cmd.Process.Pid
	_ = writeJSONFile(*statsPath, st)

	var mu sync.Mutex
	var wg sync.WaitGroup
	if pipe != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(pipe)
			first := true
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					if first && line[len(line)-1] == '\n' {
						mu.Lock()
						st.FirstLineNS = time.Now().UnixNano()
						mu.Unlock()
						first = false
					}
					_, _ = outFile.Write(line)
				}
				if err != nil {
					return
				}
			}
		}()
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	wg.Wait() // the pipe closes when the child exits
	werr := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	st.Running = false
	st.ExitNS = time.Now().UnixNano()
	if ps := cmd.ProcessState; ps != nil {
		st.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signaled = ws.Signal().String()
		}
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			st.UserS = float64(ru.Utime.Nano()) / 1e9
			st.SysS = float64(ru.Stime.Nano()) / 1e9
			st.MaxRSSKB = ru.Maxrss
		}
	}
	if err := writeJSONFile(*statsPath, st); err != nil {
		return err
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if st.ExitCode < 0 {
				return exitError(128 + 15)
			}
			return exitError(st.ExitCode)
		}
		return fmt.Errorf("wait: %w", werr)
	}
	return nil
}
