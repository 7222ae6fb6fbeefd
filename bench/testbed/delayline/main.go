//go:build linux

// Command delayline delays forwarded packets in user space: the kernel has no
// sch_netem here, so the testbed's routers send the packets that cross an
// emulated access link to an NFQUEUE (iptables -j NFQUEUE --queue-bypass) and
// this program accepts each one a fixed time after it arrived.
//
//	delayline --queue 0=5ms --queue 1=10ms [--stats FILE] [--ready FILE]
//
// It speaks nfnetlink_queue directly (nfq.go): copy mode PACKET with a
// 16-byte range (only the length is wanted), fail-open (a full queue or
// socket buffer accepts instead of dropping), GSO packets unsegmented, and
// verdicts in batches: every packet of a queue gets the same delay, so packets
// leave in id order and one NFQNL_MSG_VERDICT_BATCH accepts all that are due
// (within --granularity/2 of each other). Each queue has its own netlink
// socket and thread, which does everything: ppoll until the socket is
// readable or the oldest packet is due, read all queued packets without
// blocking, release what is due. The poll timer's overshoot is
// learned and subtracted, so the mean delay matches the configured one. With
// --queue-bypass on the iptables rule a dead delay line never blackholes
// traffic. Stats (JSON) go to --stats every second and to standard error on
// exit (SIGTERM/SIGINT), after every held packet is accepted.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type queueFlag []queueSpec

type queueSpec struct {
	Num   uint16
	Delay time.Duration
}

func (q *queueFlag) String() string { return fmt.Sprint(*q) }
func (q *queueFlag) Set(s string) error {
	num, d, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want NUM=DELAY, e.g. 0=5ms")
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil {
		return err
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur < 0 {
		return fmt.Errorf("bad delay %q", d)
	}
	*q = append(*q, queueSpec{uint16(n), dur})
	return nil
}

func main() {
	var queues queueFlag
	flag.Var(&queues, "queue", "NUM=DELAY: bind NFQUEUE NUM and delay its packets by DELAY (repeatable)")
	maxLen := flag.Uint("maxlen", 1<<17, "kernel queue length per queue (fail-open beyond)")
	rcvBuf := flag.Int("rcvbuf", 64<<20, "netlink socket receive buffer, bytes")
	statsFile := flag.String("stats", "", "write stats JSON here every second and on exit")
	readyFile := flag.String("ready", "", "create this file once every queue is bound")
	granularity := flag.Duration("granularity", 250*time.Microsecond, "packets due within half of this of each other leave in one batch")
	flag.Parse()
	if len(queues) == 0 {
		fmt.Fprintln(os.Stderr, "delayline: give at least one --queue NUM=DELAY")
		os.Exit(2)
	}
	// One socket and one thread per queue: with iptables --queue-balance the
	// work (including the kernel's forwarding of released packets, which runs
	// in the verdict call) spreads over the cores.
	var dls []*delayLine
	for _, q := range queues {
		dl, err := open(*rcvBuf)
		if err != nil {
			fatal(err)
		}
		if err := dl.bind(q, uint32(*maxLen)); err != nil {
			fatal(fmt.Errorf("bind queue %d: %w", q.Num, err))
		}
		dl.tol = int64(*granularity) / 2
		dls = append(dls, dl)
	}
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte("ready\n"), 0o644); err != nil {
			fatal(err)
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, dl := range dls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dl.loop(&stop)
			dl.shutdown()
			dl.publish(true)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			writeStats(dls, *statsFile)
		case <-sigs:
			stop.Store(true)
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
			writeStats(dls, *statsFile)
			os.Exit(0)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "delayline:", err)
	os.Exit(1)
}

type entry struct {
	id uint32
	at int64 // arrival, ns since epoch0
}

// queue is one NFQUEUE's FIFO of held packets. Every packet of a queue gets
// the same delay, so packets leave in arrival (= id) order.
type queue struct {
	spec queueSpec
	fifo []entry // fifo[head:] are held
	head int

	packets  uint64
	bytes    uint64
	delaySum float64 // ns
	delayMax int64
	batches  uint64
	lastRecv uint64 // 1<<32 | id of the newest packet received, 0 before any
}

func (q *queue) held() int { return len(q.fifo) - q.head }

func (q *queue) push(e entry) {
	if q.head > 0 && q.head == len(q.fifo) {
		q.fifo, q.head = q.fifo[:0], 0
	} else if q.head > 4096 && q.head > len(q.fifo)/2 {
		n := copy(q.fifo, q.fifo[q.head:])
		q.fifo, q.head = q.fifo[:n], 0
	}
	q.fifo = append(q.fifo, e)
}

type delayLine struct {
	fd       int
	queues   map[uint16]*queue
	order    []*queue
	seq      uint32
	start    time.Time
	overruns uint64 // ENOBUFS on receive: the kernel could not queue a message to us
	sendErrs uint64
	badMsgs  uint64
	bias     int64 // running estimate of the poll timer's overshoot, ns
	tol      int64 // packets due within tol of now leave in the same batch

	mu   sync.Mutex // guards snap
	snap stats
}

var epoch0 = time.Now()

func mono() int64 { return int64(time.Since(epoch0)) }

func open(rcvBuf int) (*delayLine, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &delayLine{fd: fd, queues: map[uint16]*queue{}, start: time.Now()}, nil
}

func (d *delayLine) send(b []byte) error {
	return unix.Sendto(d.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// request sends a config message and waits for its ack.
func (d *delayLine) request(b []byte, seq uint32) error {
	if err := d.send(b); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(d.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		msgs, err := splitMessages(nil, buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if isPacket(m) {
				// A packet of a queue bound a moment ago: hold it like any other.
				d.enqueue(m, mono())
				continue
			}
			if m.Type != nlmsgError {
				continue
			}
			errno, s, err := parseError(m)
			if err != nil {
				return err
			}
			if s != seq {
				continue
			}
			if errno != 0 {
				return syscall.Errno(-errno)
			}
			return nil
		}
	}
}

func (d *delayLine) bind(q queueSpec, maxLen uint32) error {
	if _, dup := d.queues[q.Num]; dup {
		return fmt.Errorf("queue %d given twice", q.Num)
	}
	qq := &queue{spec: q}
	d.queues[q.Num] = qq
	d.order = append(d.order, qq)
	d.seq++
	if err := d.request(encodeCmd(d.seq, q.Num, nfqnlCfgCmdBind, afInet), d.seq); err != nil {
		return err
	}
	// Copy mode PACKET with a 16-byte range: the kernel then reports the
	// packet's length (NFQA_CAP_LEN) and copies next to nothing.
	d.seq++
	if err := d.request(encodeParams(d.seq, q.Num, copyRange, nfqnlCopyPacket, maxLen, nfqaCfgFFailOpen|nfqaCfgFGSO), d.seq); err != nil {
		return err
	}
	return nil
}

const copyRange = 16

func (d *delayLine) enqueue(m nlMsg, now int64) {
	p, err := parsePacket(m)
	if err != nil {
		d.badMsgs++
		return
	}
	q := d.queues[p.Queue]
	if q == nil {
		// Not ours (cannot happen: the kernel only sends bound queues); accept at once.
		_ = d.send(encodeVerdict(p.Queue, p.ID, nfAccept, false))
		return
	}
	q.bytes += uint64(p.Len)
	q.lastRecv = 1<<32 | uint64(p.ID)
	q.push(entry{id: p.ID, at: now})
}

// loop is the delay line: one thread waits in ppoll until the socket is
// readable or the oldest held packet is due, reads every queued packet
// without blocking, and accepts each queue's due packets with one batch
// verdict. It returns when stop is set.
func (d *delayLine) loop(stop *atomic.Bool) {
	runtime.LockOSThread()
	rd := newMmsgReader(64, 2048)
	msgs := make([]nlMsg, 0, 16)
	fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}}
	const idle = int64(50 * time.Millisecond)
	for !stop.Load() {
		now := mono()
		wait := idle
		for _, q := range d.order {
			if q.held() > 0 {
				if w := q.fifo[q.head].at + int64(q.spec.Delay) - d.bias - now; w < wait {
					wait = w
				}
			}
		}
		if wait > 0 {
			target := now + wait
			ts := unix.NsecToTimespec(wait)
			_, err := unix.Ppoll(fds, &ts, nil)
			now = mono()
			if err == nil && fds[0].Revents == 0 && wait < idle {
				// A timeout: learn how late the timer fires (EWMA, 1/16).
				over := now - target
				d.bias += (over - d.bias) / 16
				if d.bias < 0 {
					d.bias = 0
				}
				if d.bias > int64(time.Millisecond) {
					d.bias = int64(time.Millisecond)
				}
			}
		}
		// Read everything that is there, many datagrams per system call
		// (bounded, so that releases stay timely).
		for i := 0; i < 16; i++ {
			n, err := rd.read(d.fd)
			if err != nil {
				if errors.Is(err, unix.ENOBUFS) {
					d.overruns++
					continue
				}
				break // EAGAIN, EINTR
			}
			t := mono()
			for j := 0; j < n; j++ {
				msgs, err = splitMessages(msgs[:0], rd.msg(j))
				if err != nil {
					d.badMsgs++
				}
				for _, m := range msgs {
					if isPacket(m) {
						d.enqueue(m, t)
					}
				}
			}
			if n < len(rd.bufs) {
				break
			}
		}
		now = mono()
		for _, q := range d.order {
			d.release(q, now)
		}
		d.publish(false)
	}
}

// release accepts, in one batch verdict, every held packet of q that is due.
func (d *delayLine) release(q *queue, now int64) {
	delay := int64(q.spec.Delay)
	var maxID uint32
	n := 0
	for q.held() > 0 {
		e := q.fifo[q.head]
		// The wake-up was aimed bias early to land on time: whatever is due
		// within bias (+ the batching tolerance) goes now.
		if e.at+delay > now+d.tol+d.bias {
			break
		}
		maxID = e.id
		dd := now - e.at
		q.delaySum += float64(dd)
		if dd > q.delayMax {
			q.delayMax = dd
		}
		q.head++
		n++
	}
	if n == 0 {
		return
	}
	if err := d.send(encodeVerdict(q.spec.Num, maxID, nfAccept, true)); err != nil {
		d.sendErrs++
	}
	q.packets += uint64(n)
	q.batches++
}

// shutdown accepts every packet still held and unbinds the queues.
func (d *delayLine) shutdown() {
	for _, q := range d.order {
		// Every packet received so far has an id <= the newest one seen.
		if q.lastRecv != 0 {
			_ = d.send(encodeVerdict(q.spec.Num, uint32(q.lastRecv), nfAccept, true))
		}
		q.head = len(q.fifo)
		d.seq++
		_ = d.send(encodeCmd(d.seq, q.spec.Num, nfqnlCfgCmdUnbind, afInet))
	}
}

type queueStats struct {
	Queue       uint16  `json:"queue"`
	DelayMs     float64 `json:"delay_ms"`
	Packets     uint64  `json:"packets"`
	Bytes       uint64  `json:"bytes"`
	Batches     uint64  `json:"batches"`
	Held        int     `json:"held"`
	MeanDelayMs float64 `json:"mean_delay_ms"`
	DelaySumMs  float64 `json:"delay_sum_ms"` // over all packets released, for deltas between snapshots
	MaxDelayMs  float64 `json:"max_delay_ms"`
}

type stats struct {
	Pid        int          `json:"pid"`
	Final      bool         `json:"final"`
	UptimeS    float64      `json:"uptime_s"`
	CPUS       float64      `json:"cpu_s"`
	Overruns   uint64       `json:"overruns"`
	SendErrors uint64       `json:"send_errors"`
	BadMsgs    uint64       `json:"bad_messages"`
	BiasUs     float64      `json:"timer_bias_us"`
	Queues     []queueStats `json:"queues"`
}

// publish refreshes the stats snapshot (at most every 200 ms unless final).
func (d *delayLine) publish(final bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !final && time.Since(d.start).Seconds()-d.snap.UptimeS < 0.2 {
		return
	}
	s := stats{Pid: os.Getpid(), Final: final, UptimeS: time.Since(d.start).Seconds(),
		Overruns: d.overruns, SendErrors: d.sendErrs, BadMsgs: d.badMsgs, BiasUs: float64(d.bias) / 1e3}
	for _, q := range d.order {
		qs := queueStats{Queue: q.spec.Num, DelayMs: float64(q.spec.Delay) / 1e6, Packets: q.packets,
			Bytes: q.bytes, Batches: q.batches, Held: q.held(), MaxDelayMs: float64(q.delayMax) / 1e6,
			DelaySumMs: q.delaySum / 1e6}
		if q.packets > 0 {
			qs.MeanDelayMs = q.delaySum / float64(q.packets) / 1e6
		}
		s.Queues = append(s.Queues, qs)
	}
	d.snap = s
}

// writeStats merges the queues' snapshots into one stats object.
func writeStats(dls []*delayLine, path string) {
	var s stats
	s.Final = true
	for i, d := range dls {
		d.mu.Lock()
		q := d.snap
		d.mu.Unlock()
		if i == 0 {
			s.Pid, s.UptimeS = q.Pid, q.UptimeS
		}
		s.Final = s.Final && q.Final
		s.Overruns += q.Overruns
		s.SendErrors += q.SendErrors
		s.BadMsgs += q.BadMsgs
		s.BiasUs = max(s.BiasUs, q.BiasUs)
		s.Queues = append(s.Queues, q.Queues...)
	}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.CPUS = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	b, _ := json.Marshal(s)
	if s.Final {
		fmt.Fprintln(os.Stderr, string(b))
	}
	if path == "" {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, append(b, '\n'), 0o644) == nil {
		_ = os.Rename(tmp, path)
	}
}
