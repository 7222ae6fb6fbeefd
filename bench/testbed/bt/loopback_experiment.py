#!/usr/bin/python3
"""Compare libtorrent settings in a rate-limited flash crowd on loopback.

No namespaces, no tc: the links are emulated by libtorrent's own rate limiter
(bt_client.py --upload-limit/--download-limit, with every peer put in the
global peer class), and there is no RTT. Use it only to rank settings against
each other (super-seeding, choking, suggest mode, request queue, piece size);
absolute figures come from the namespace testbed.

    /usr/bin/python3 loopback_experiment.py --peers 20 --size 16MiB \
        --seed-up-mbit 40 --peer-up-mbit 8 --peer-down-mbit 40 --runs 2 \
        --variant base= --variant superseed=seed:--super-seed ...

A variant is NAME=ARGS where ARGS is a comma-separated list of bt_client.py
arguments; prefix one with "seed:" or "leech:" to give it to that role only,
and "piece:BYTES" sets the piece size. Prints one JSON line per run and a
summary per variant (median over runs of the max completion time).
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def parse_size(s):
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, HERE)
    from make_torrent import parse_size as ps  # noqa: E402
    return ps(s)


def parse_variant(v):
    name, _, spec = v.partition("=")
    seed, leech, piece = [], [], None
    for item in filter(None, spec.split(",")):
        if item.startswith("seed:"):
            seed += item[5:].split(" ")
        elif item.startswith("leech:"):
            leech += item[6:].split(" ")
        elif item.startswith("piece:"):
            piece = parse_size(item[6:])
        else:
            seed += item.split(" ")
            leech += item.split(" ")
    return name, seed, leech, piece


def wait_line(path, event, deadline):
    while True:
        try:
            with open(path) as f:
                for line in f:
                    if '"event": "%s"' % event in line:
                        return json.loads(line)
        except FileNotFoundError:
            pass
        if time.time() >= deadline:
            return None
        time.sleep(0.05)


def diagnose(pid, path):
    """A leecher that did not complete: where is it stuck? (kept with --keep)"""
    with open(path, "w") as f:
        f.write("pid %d\n" % pid)
        try:
            for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
                t = "/proc/%d/task/%s" % (pid, tid)
                rd = lambda n: open(os.path.join(t, n)).read().strip()  # noqa: E731
                f.write("task %s %s state=%s wchan=%s syscall=%s\n" % (
                    tid, rd("comm"), rd("stat").split()[2], rd("wchan"), rd("syscall").split()[0]))
        except OSError as e:
            f.write("proc: %s\n" % e)
        f.flush()
        if shutil.which("gdb"):
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 25"],
                               capture_output=True, text=True, timeout=60)
            f.write(r.stdout[-60000:])
    os.kill(pid, signal.SIGUSR1)  # faulthandler: Python stacks into its .err
    time.sleep(0.5)


def one_run(a, work, name, seed_args, leech_args, piece, run, port0):
    d = os.path.join(work, "%s-%d" % (name, run))
    os.makedirs(d)
    data = os.path.join(work, "data")
    torrent = os.path.join(d, "f.torrent")
    tracker = "http://127.0.0.1:%d/announce" % port0
    h = subprocess.run([PY, os.path.join(HERE, "make_torrent.py"), os.path.join(data, "f.bin"),
                        "--piece-size", str(piece), "--tracker", tracker, "-o", torrent],
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(d, "wl.txt"), "w") as f:
        f.write(h + "\n")
    subprocess.run([os.path.join(HERE, "opentracker.sh"), "start", "--listen", "127.0.0.1:%d" % port0,
                    "--whitelist", os.path.join(d, "wl.txt"), "--dir", os.path.join(d, "tracker")],
                   check=True, capture_output=True)
    procs = []
    bps = lambda mbit: int(mbit * 1e6 / 8)  # noqa: E731
    try:
        common = ["--torrent", torrent, "--peers-expected", str(a.peers), "--max-seconds", str(a.timeout + 30)]
        so = os.path.join(d, "seed.out")
        procs.append(subprocess.Popen(
            [PY, os.path.join(HERE, "bt_client.py"), *common, "--save-dir", data, "--seed",
             "--listen", "127.0.0.1:%d" % (port0 + 1), "--json-out", os.path.join(d, "seed.json"),
             "--upload-limit", str(bps(a.seed_up_mbit)), *seed_args],
            stdout=open(so, "w"), stderr=open(os.path.join(d, "seed.err"), "w")))
        if not wait_line(so, "seeding", time.time() + 10):
            raise RuntimeError("seed did not start")
        # leechers set up first and start together at t_go (bt_client --start-at)
        t_go = time.time() + a.setup_s
        outs = []
        for i in range(a.peers):
            o = os.path.join(d, "l%d.out" % i)
            outs.append(o)
            procs.append(subprocess.Popen(
                [PY, os.path.join(HERE, "bt_client.py"), *common, "--save-dir", os.path.join(d, "l%d" % i),
                 "--listen", "127.0.0.1:%d" % (port0 + 2 + i), "--json-out", os.path.join(d, "l%d.json" % i),
                 "--upload-limit", str(bps(a.peer_up_mbit)), "--download-limit", str(bps(a.peer_down_mbit)),
                 "--start-at", "%.3f" % t_go, *leech_args],
                stdout=open(o, "w"), stderr=open(os.path.join(d, "l%d.err" % i), "w")))
        done = [wait_line(o, "complete", t_go + a.timeout) for o in outs]
        if a.diagnose:
            for i, (p, ok) in enumerate(zip(procs[1:], done)):
                if not ok and p.poll() is None:
                    diagnose(p.pid, os.path.join(d, "l%d.diag" % i))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run([os.path.join(HERE, "opentracker.sh"), "stop", "--dir", os.path.join(d, "tracker")],
                       capture_output=True)
    ok = [x for x in done if x]
    secs = sorted(x["t_done"] - t_go for x in ok)
    seed_final = json.load(open(os.path.join(d, "seed.json")))
    F = os.path.getsize(os.path.join(data, "f.bin"))
    S, U, D = (bps(a.seed_up_mbit), bps(a.peer_up_mbit), bps(a.peer_down_mbit))
    bound = max(F / S, F / D, a.peers * F / (S + a.peers * U))
    res = {"variant": name, "run": run, "peers": a.peers, "file_bytes": F, "piece_size": piece,
           "completed": len(ok),
           "completion_s": {"min": round(secs[0], 2), "median": round(statistics.median(secs), 2),
                            "max": round(secs[-1], 2)} if secs else None,
           "fluid_bound_s": round(bound, 2),
           "ratio_to_bound": round(secs[-1] / bound, 3) if len(ok) == a.peers else None,
           "seed_payload_up": seed_final["payload_up"],
           "seed_copies": round(seed_final["payload_up"] / F, 2),
           "redundant_bytes": sum(x.get("redundant_bytes", 0) for x in ok),
           "late_starts": sum(1 for x in ok if (x.get("startup") or {}).get("late_s", 0) > 0.1)}
    if a.check_sha:
        want = hashlib.sha256(open(os.path.join(data, "f.bin"), "rb").read()).hexdigest()
        res["sha_ok"] = all(hashlib.sha256(open(os.path.join(d, "l%d" % i, "f.bin"), "rb").read()).hexdigest() == want
                            for i in range(a.peers) if done[i])
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--size", default="16MiB")
    ap.add_argument("--piece-size", default="64KiB")
    ap.add_argument("--seed-up-mbit", type=float, default=40)
    ap.add_argument("--peer-up-mbit", type=float, default=8)
    ap.add_argument("--peer-down-mbit", type=float, default=40)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120, help="per run")
    ap.add_argument("--port", type=int, default=28500)
    ap.add_argument("--setup-s", type=float, default=4.0, help="leechers start together this long after launch")
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--interleave", action="store_true", help="run variants round-robin (fairer under background load)")
    ap.add_argument("--check-sha", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--diagnose", action="store_true", help="stacks of leechers that did not complete (gdb, /proc)")
    a = ap.parse_args()
    if a.peers > 60:
        sys.exit("at most 60 peers")
    variants = [parse_variant(v) for v in (a.variant or ["base="])]
    work = tempfile.mkdtemp(prefix="bt-exp.")
    results = {}
    try:
        os.makedirs(os.path.join(work, "data"))
        with open(os.path.join(work, "data", "f.bin"), "wb") as f:
            f.write(os.urandom(parse_size(a.size)))
        order = ([(r, v) for r in range(a.runs) for v in variants] if a.interleave
                 else [(r, v) for v in variants for r in range(a.runs)])
        for run, (name, seed_args, leech_args, piece) in order:
            t = time.time()
            cpu0 = os.times()
            res = one_run(a, work, name, seed_args, leech_args, piece or parse_size(a.piece_size), run, a.port)
            cpu1 = os.times()
            res["cpu_s"] = round((cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system), 1)
            res["wall_s"] = round(time.time() - t, 1)
            print(json.dumps(res), flush=True)
            results.setdefault(name, []).append(res)
    finally:
        if a.keep:
            print("kept %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for name, rs in results.items():
        mx = [r["completion_s"]["max"] for r in rs if r["completion_s"] and r["completed"] == a.peers]
        md = [r["completion_s"]["median"] for r in rs if r["completion_s"]]
        print(json.dumps({"summary": name, "runs": len(rs),
                          "max_s_median": round(statistics.median(mx), 2) if mx else None,
                          "max_s_all": mx, "median_s_median": round(statistics.median(md), 2) if md else None,
                          "seed_copies": [r["seed_copies"] for r in rs]}), flush=True)


if __name__ == "__main__":
    main()
