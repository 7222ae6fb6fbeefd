#!/usr/bin/python3
"""One transmission-daemon peer (seed or leecher) for the flash-crowd baseline.

    /usr/bin/python3 tr_peer.py --torrent T --save-dir D [--seed] \
        --listen IP:PORT --rpc-port P --config-dir C --peers-expected N --json-out FILE

This process owns one transmission-daemon (started in the foreground as its
child, own --config-dir with a generated settings.json). It adds the torrent
with `transmission-remote -a T -w D`; for the seed it then forces a verify of
the complete file and waits until the torrent is seeding. It polls progress
over the daemon's RPC (the protocol transmission-remote speaks: exact byte
counters, and no process spawned per poll) and prints the same JSON lines as
bt_client.py with "client":"transmission":
  seed:     {"event":"seeding",...}   once verified and seeding
  leecher:  {"event":"complete",...}  when all pieces are verified
  both:     {"event":"final",...}     on SIGTERM/SIGINT (also written to --json-out)
On SIGTERM it stops its daemon (SIGTERM, SIGKILL after 5 s) and exits 0.
Exit 1 on a fatal error, 2 when --max-seconds elapsed. Logs go to stderr and
to CONFIG_DIR/daemon.log.

The RPC listens on --rpc-bind (default 127.0.0.1) in the peer's own network
namespace, so every namespace needs its loopback up (`ip link set lo up`).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

T_PROC = time.time()
CLIENT = "transmission"

# RPC torrent status values (transmission 3.00)
TR_STATUS = {0: "stopped", 1: "check_wait", 2: "check", 3: "download_wait",
             4: "download", 5: "seed_wait", 6: "seed"}
FIELDS = ["id", "hashString", "status", "percentDone", "leftUntilDone", "haveValid",
          "downloadedEver", "uploadedEver", "corruptEver", "peersConnected",
          "error", "errorString", "recheckProgress", "sizeWhenDone", "pieceSize", "trackerStats"]


def log(msg):
    sys.stderr.write("[tr_peer %.3f] %s\n" % (time.time(), msg))
    sys.stderr.flush()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def split_hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def die_with_parent():
    """In the child: get SIGTERM if this driver dies (even by SIGKILL)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def settings_for(a, ip, port, start_paused=False):
    n = max(1, a.peers_expected)
    return {
        # interfaces: peers on the given IP only; RPC on the namespace's loopback
        "bind-address-ipv4": ip,
        "bind-address-ipv6": "::1",
        "peer-port": port,
        "peer-port-random-on-start": False,
        "port-forwarding-enabled": False,          # no UPnP / NAT-PMP
        "rpc-enabled": True,
        "rpc-bind-address": a.rpc_bind,
        "rpc-port": a.rpc_port,
        "rpc-authentication-required": False,
        "rpc-whitelist-enabled": True,
        "rpc-whitelist": a.rpc_bind,
        "rpc-host-whitelist-enabled": False,
        # discovery: tracker only; TCP only
        "dht-enabled": False,
        "lpd-enabled": False,
        "pex-enabled": False,
        "utp-enabled": False,
        # no speed limits, no queueing, no ratio/idle stop
        "speed-limit-down-enabled": False,
        "speed-limit-up-enabled": False,
        "alt-speed-enabled": False,
        "alt-speed-time-enabled": False,
        "download-queue-enabled": False,
        "seed-queue-enabled": False,
        "queue-stalled-enabled": False,
        "ratio-limit-enabled": False,
        "idle-seeding-limit-enabled": False,
        "start-added-torrents": not start_paused,
        # peers and unchoke slots >= N
        "peer-limit-global": max(240, 4 * n),
        "peer-limit-per-torrent": max(60, 2 * n),
        "upload-slots-per-torrent": max(14, n + 2),
        # plaintext preferred (cheaper on 2 cores); encrypted peers still accepted
        "encryption": 0,
        # files
        "download-dir": os.path.abspath(a.save_dir),
        "incomplete-dir-enabled": False,
        "rename-partial-files": False,
        "preallocation": 1,
        "cache-size-mb": 16,
        "prefetch-enabled": True,
        "blocklist-enabled": False,
        "watch-dir-enabled": False,
        "script-torrent-done-enabled": False,
        "trash-original-torrent-files": False,
        "scrape-paused-torrents-enabled": False,
        "message-level": 2 if a.verbose else 1,
        "umask": 18,
    }


class Rpc:
    def __init__(self, host, port):
        self.url = "http://%s:%d/transmission/rpc" % (host, port)
        self.sid = ""

    def call(self, method, args=None, timeout=10.0):
        body = json.dumps({"method": method, "arguments": args or {}}).encode()
        for _ in range(3):
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"X-Transmission-Session-Id": self.sid,
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    out = json.loads(r.read().decode())
            except urllib.error.HTTPError as e:
                if e.code == 409:
                    self.sid = e.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise
            if out.get("result") != "success":
                raise RuntimeError("rpc %s: %s" % (method, out.get("result")))
            return out.get("arguments", {})
        raise RuntimeError("rpc %s: no session id" % method)


def tracker_summary(st):
    """What the tracker told this peer (to tell 'no peers known' from 'peers known
    but not connected', e.g. loopback peers, which transmission 3.00 rejects)."""
    ts = (st or {}).get("trackerStats") or []
    if not ts:
        return None
    t = ts[0]
    return {"announces_ok": bool(t.get("lastAnnounceSucceeded")),
            "last_announce_peers": t.get("lastAnnouncePeerCount"),
            "seeders": t.get("seederCount"), "leechers": t.get("leecherCount"),
            "last_announce_time": t.get("lastAnnounceTime"),
            "result": t.get("lastAnnounceResult")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-dir", required=True)
    ap.add_argument("--seed", action="store_true", help="initial seed: the complete file is in --save-dir")
    ap.add_argument("--listen", required=True, type=split_hostport, help="IP:PORT for peer connections (bind-address-ipv4, peer-port)")
    ap.add_argument("--rpc-port", type=int, required=True)
    ap.add_argument("--rpc-bind", default="127.0.0.1")
    ap.add_argument("--config-dir", required=True)
    ap.add_argument("--peers-expected", type=int, required=True)
    ap.add_argument("--json-out", required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--poll-s", type=float, default=0.1, help="RPC poll period while downloading")
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    ap.add_argument("--daemon", default="transmission-daemon")
    ap.add_argument("--remote", default="transmission-remote")
    ap.add_argument("--allow-existing", action="store_true", help="leecher: accept data already in --save-dir")
    ap.add_argument("--start-at", type=float, default=0.0,
                    help="leecher: unix time; daemon up and torrent added stopped before, started at this moment")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    ip, port = a.listen
    role = "seed" if a.seed else "leecher"
    stop = {"sig": None}

    def on_signal(signum, _frame):
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not a.seed and not a.allow_existing and os.path.isdir(a.save_dir) and os.listdir(a.save_dir):
        msg = "leecher: %s is not empty (use a fresh --save-dir per run, or --allow-existing)" % a.save_dir
        log(msg)
        doc = {"client": CLIENT, "event": "error", "role": role, "label": a.label, "listen": "%s:%d" % (ip, port),
               "peers_expected": a.peers_expected, "t_proc": T_PROC, "t_end": time.time(), "complete": False,
               "error": msg}
        with open(a.json_out, "w") as f:
            f.write(json.dumps(doc) + "\n")
        emit(doc)
        return 1
    os.makedirs(a.config_dir, exist_ok=True)
    os.makedirs(a.save_dir, exist_ok=True)
    pending_start = (not a.seed) and a.start_at > 0 and time.time() < a.start_at
    with open(os.path.join(a.config_dir, "settings.json"), "w") as f:
        json.dump(settings_for(a, ip, port, start_paused=pending_start), f, indent=1, sort_keys=True)
    # a stale resume/torrents dir would re-add an old torrent
    for sub in ("resume", "torrents"):
        d = os.path.join(a.config_dir, sub)
        if os.path.isdir(d):
            for x in os.listdir(d):
                os.unlink(os.path.join(d, x))

    logf = open(os.path.join(a.config_dir, "daemon.log"), "ab")
    daemon = subprocess.Popen([a.daemon, "-f", "-g", a.config_dir], stdin=subprocess.DEVNULL,
                              stdout=logf, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    log("transmission-daemon pid %d (config %s)" % (daemon.pid, a.config_dir))
    rpc = Rpc(a.rpc_bind, a.rpc_port)
    remote = [a.remote, "%s:%d" % (a.rpc_bind, a.rpc_port)]

    def base(event):
        return {"client": CLIENT, "event": event, "role": role, "label": a.label,
                "listen": "%s:%d" % (ip, port), "peers_expected": a.peers_expected}

    st = {}
    t_start = None
    t_done = None
    fatal = None
    exit_code = 0
    peers_max = 0
    deadline = T_PROC + a.max_seconds
    try:
        # 1. RPC up (bounded: 10 s)
        for _ in range(200):
            if daemon.poll() is not None:
                raise RuntimeError("transmission-daemon exited with %s" % daemon.returncode)
            try:
                rpc.call("session-get", timeout=0.5)
                break
            except (OSError, RuntimeError):
                time.sleep(0.05)
        else:
            raise RuntimeError("RPC on %s:%d not up after 10 s" % (a.rpc_bind, a.rpc_port))
        t_rpc = time.time()

        # 2. add the torrent with transmission-remote
        r = subprocess.run(remote + ["-a", os.path.abspath(a.torrent), "-w", os.path.abspath(a.save_dir)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or "success" not in r.stdout:
            raise RuntimeError("transmission-remote -a failed: %s %s" % (r.stdout.strip(), r.stderr.strip()))
        t_start = time.time()
        log("added in %.3f s after start: %s" % (t_start - T_PROC, r.stdout.strip()))

        def get():
            ts = rpc.call("torrent-get", {"fields": FIELDS})["torrents"]
            if not ts:
                raise RuntimeError("torrent vanished")
            return ts[0]

        if a.seed:
            # transmission 3.00 verifies existing data by itself when a torrent
            # is added (status check_wait/check). Wait for that; if the data is
            # still not complete, force one more verify, then give up.
            forced_at = None
            for _ in range(int(120 / 0.05)):
                st = get()
                if st["error"] and st["error"] != 2:
                    raise RuntimeError("seed: %s" % st["errorString"])
                if st["status"] in (1, 2):
                    pass
                elif st["percentDone"] >= 1.0:
                    if st["status"] == 6:
                        break
                    if st["status"] == 0:
                        subprocess.run(remote + ["-t", "all", "--start"], capture_output=True, timeout=10)
                elif forced_at is None:
                    subprocess.run(remote + ["-t", "all", "--verify"], capture_output=True, timeout=10)
                    forced_at = time.time()
                elif time.time() - forced_at > 2.0:
                    raise RuntimeError("seed: data in %s does not match the torrent (%.1f%% valid)"
                                       % (a.save_dir, 100 * st["percentDone"]))
                time.sleep(0.05)
            else:
                raise RuntimeError("seed: not seeding after 120 s")
            line = base("seeding")
            now = time.time()
            line.update({"t": now, "t_proc": T_PROC, "startup_s": round(now - T_PROC, 3),
                         "rpc_up_s": round(t_rpc - T_PROC, 3), "verify_s": round(now - t_start, 3),
                         "piece_size": st.get("pieceSize"), "file_bytes": st.get("sizeWhenDone")})
            emit(line)

        if pending_start:
            while stop["sig"] is None and time.time() < a.start_at:
                time.sleep(min(0.05, max(0.0, a.start_at - time.time())))
            if stop["sig"] is None:
                rpc.call("torrent-start-now", {"ids": [get()["id"]]})
                t_start = time.time()
                log("started %.3f s after --start-at" % (t_start - a.start_at))
        elif a.start_at > 0 and not a.seed:
            log("--start-at is %.3f s in the past: started at once" % (time.time() - a.start_at))

        # 3. main loop: poll until complete, then keep seeding until a signal
        slow_polls = 0
        while stop["sig"] is None:
            now = time.time()
            if now >= deadline:
                exit_code = 2
                fatal = "--max-seconds elapsed"
                break
            if daemon.poll() is not None:
                raise RuntimeError("transmission-daemon exited with %s" % daemon.returncode)
            try:
                st = get()
                slow_polls = 0
            except OSError as e:  # URLError and socket timeouts: the daemon is busy
                # On a CPU-bound machine the daemon's single thread answers RPC
                # late; that is not the torrent failing. Give up only if it
                # stays unreachable for a minute.
                slow_polls += 1
                if slow_polls * 10 > 60:
                    raise RuntimeError("rpc unreachable for 60 s: %s" % e)
                log("rpc poll failed (%s); retrying" % e)
                continue
            peers_max = max(peers_max, st["peersConnected"])
            if st["error"] and st["error"] != 2:  # 2 = tracker error: transient, keep going
                raise RuntimeError("torrent error %d: %s" % (st["error"], st["errorString"]))
            if not a.seed and t_done is None and st["leftUntilDone"] == 0 and st["percentDone"] >= 1.0:
                t_done = time.time()
                line = base("complete")
                line.update({
                    "t_proc": T_PROC, "t_start": t_start, "t_done": t_done,
                    "seconds": round(t_done - t_start, 3),
                    "file_bytes": st["sizeWhenDone"], "piece_size": st["pieceSize"],
                    "payload_down": st["downloadedEver"], "payload_up": st["uploadedEver"],
                    "corrupt_bytes": st["corruptEver"], "from_seed_bytes": None,
                    "peers_max": peers_max, "poll_s": a.poll_s,
                })
                emit(line)
            if a.verbose:
                log("%s %.1f%% peers=%d down=%d up=%d" % (TR_STATUS.get(st["status"]), 100 * st["percentDone"],
                                                          st["peersConnected"], st["downloadedEver"], st["uploadedEver"]))
            time.sleep(a.poll_s if (t_done is None and not a.seed) else 0.5)
    except Exception as e:  # noqa: BLE001 - report any failure in the JSON
        fatal = str(e)
        exit_code = 1
        log("fatal: %s" % fatal)

    # ---- final counters, then stop the daemon --------------------------------
    try:
        if daemon.poll() is None and t_start is not None:
            st = rpc.call("torrent-get", {"fields": FIELDS})["torrents"][0]
    except Exception:  # noqa: BLE001
        pass
    final = base({0: "final", 2: "timeout"}.get(exit_code, "error"))
    final.update({
        "t_proc": T_PROC, "t_start": t_start, "t_end": time.time(),
        "complete": bool(st.get("percentDone", 0) >= 1.0), "t_done": t_done,
        "seconds": None if t_done is None else round(t_done - t_start, 3),
        "file_bytes": st.get("sizeWhenDone"), "piece_size": st.get("pieceSize"),
        "payload_down": st.get("downloadedEver"), "payload_up": st.get("uploadedEver"),
        "corrupt_bytes": st.get("corruptEver"), "from_seed_bytes": None,
        "peers_max": peers_max, "signal": stop["sig"], "error": fatal,
        "tracker": tracker_summary(st),
        "daemon_pid": daemon.pid, "start_at": a.start_at or None,
    })
    tmp = a.json_out + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(final) + "\n")
    os.replace(tmp, a.json_out)
    emit(final)
    if daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(timeout=5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=5)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
