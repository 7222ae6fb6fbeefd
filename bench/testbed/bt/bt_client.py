#!/usr/bin/python3
"""One libtorrent peer (seed or leecher) for the flash-crowd baseline.

    /usr/bin/python3 bt_client.py --torrent T --save-dir D [--seed] \
        --listen IP:PORT --peers-expected N --json-out FILE

stdout carries JSON lines only (one object per line, flushed at once):
  seed:     {"client":"libtorrent","event":"seeding",...}    once it listens and serves
  leecher:  {"client":"libtorrent","event":"complete",...}   when the last piece passed its hash
  both:     {"client":"libtorrent","event":"final",...}      on SIGTERM/SIGINT (also written to --json-out)
Human-readable progress and diagnostics go to stderr.

Exit codes: 0 on SIGTERM/SIGINT (after writing --json-out), 1 on a fatal error
(listen failed, torrent/file error), 2 when --max-seconds elapsed.

Run it with the system /usr/bin/python3: python3-libtorrent is installed for it only.
Every setting and why it is set is listed in README.md ("libtorrent settings").
"""
import argparse
import json
import os
import signal
import sys
import time

T_PROC = time.time()  # before importing libtorrent: "t_proc" in the JSON

import faulthandler  # noqa: E402

import libtorrent as lt  # noqa: E402

T_IMPORTED = time.time()
# `kill -USR1 PID` prints every thread's Python stack to stderr (a hung client).
faulthandler.register(signal.SIGUSR1, all_threads=True)

CLIENT = "libtorrent"
# peer-id prefix of the initial seed, so that leechers can attribute the bytes
# they received from it (peer_info.pid) -> "from_seed_bytes".
SEED_FINGERPRINT = "-SEED00-"


def log(msg):
    sys.stderr.write("[bt_client %.3f] %s\n" % (time.time(), msg))
    sys.stderr.flush()


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
    sys.stdout.flush()


def split_hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % s)
    return host.strip("[]"), int(port)


def build_settings(a, ip, port):
    """high_performance_seed() plus the flash-crowd overrides (see README.md)."""
    s = lt.high_performance_seed()
    n = max(1, a.peers_expected)
    s.update({
        # --- identity / interfaces: only the given IP, in and out -----------
        "listen_interfaces": "%s:%d" % (ip, port),
        "outgoing_interfaces": ip,
        "user_agent": "edgeswarm-bench/libtorrent-%s" % lt.__version__,
        # --- TCP only: no uTP in either direction ----------------------------
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "mixed_mode_algorithm": 0,  # prefer_tcp (moot without uTP)
        # --- no discovery besides the tracker; no port mapping ---------------
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        # --- no rate limits ---------------------------------------------------
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        # --- choking: everyone who is interested is unchoked at once ---------
        "choking_algorithm": int(lt.choking_algorithm_t.fixed_slots_choker),
        "unchoke_slots_limit": a.unchoke_slots if a.unchoke_slots is not None else -1,
        "num_optimistic_unchoke_slots": 0,
        "seed_choking_algorithm": int(getattr(lt.seed_choking_algorithm_t, a.seed_choking)),
        "unchoke_interval": 5,
        # --- connections ------------------------------------------------------
        "connections_limit": max(s.get("connections_limit", 8000), 4 * n + 50),
        "max_peerlist_size": max(3000, 4 * n),
        "allow_multiple_connections_per_ip": True,   # loopback / NATed peers share an IP
        "connection_speed": 500,                     # connection attempts per second
        "torrent_connect_boost": max(30, n + 5),     # connect to all tracker peers at once
        "min_reconnect_time": 1,                     # default 60 s: retry a failed peer quickly
        "max_failcount": 5,                          # hps sets 1: a peer not yet listening would be dropped
        "peer_connect_timeout": 5,
        "seeding_outgoing_connections": True,
        "close_redundant_connections": True,
        "no_connect_privileged_ports": False,
        # --- tracker: announce at once, re-announce is forced by us ----------
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "min_announce_interval": 5,
        "stop_tracker_timeout": 1,
        "tracker_completion_timeout": 10,
        "tracker_receive_timeout": 5,
        "num_want": max(200, 2 * n),
        # --- requests / pieces -----------------------------------------------
        "max_out_request_queue": a.max_out_request_queue,
        "request_queue_time": a.request_queue_time,
        "max_allowed_in_request_queue": max(2000, a.max_out_request_queue),
        "suggest_mode": int(getattr(lt.suggest_mode_t, a.suggest_mode)),
        "strict_end_game_mode": True,
        "predictive_piece_announce": 0,
        "piece_extent_affinity": False,
        "auto_sequential": False,
        "strict_super_seeding": bool(a.super_seed),
        # --- encryption: plaintext (saves CPU on 2 cores), accept either ----
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "in_enc_policy": int(lt.enc_policy.pe_enabled),
        "allowed_enc_level": int(lt.enc_level.pe_plaintext) if hasattr(lt, "enc_level") else 1,
        "prefer_rc4": False,
        # --- alerts: errors, status, tracker, storage -----------------------
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.tracker_notification
                          | lt.alert.category_t.storage_notification
                          | (0 if a.seed else lt.alert.category_t.block_progress_notification)),
    })
    if a.verbose:
        s["alert_mask"] |= int(lt.alert.category_t.connect_notification | lt.alert.category_t.peer_notification)
    if a.seed:
        s["peer_fingerprint"] = SEED_FINGERPRINT
    if a.upload_limit:
        s["upload_rate_limit"] = a.upload_limit
    if a.download_limit:
        s["download_rate_limit"] = a.download_limit
    if a.aio_threads:
        s["aio_threads"] = a.aio_threads
    return s


class SeedBytes:
    """Payload bytes received from the initial seed, counted exactly from
    block_finished_alert (one per 16 KiB block received), attributed by the
    sender's peer-id prefix (SEED_FINGERPRINT)."""

    def __init__(self, ti):
        self.piece = ti.piece_length()
        self.size = ti.total_size()
        self.total = 0
        self.blocks = 0
        self.prefix = SEED_FINGERPRINT.encode()

    def on_block(self, al):
        if not al.pid.to_bytes().startswith(self.prefix):
            return
        piece_len = min(self.piece, self.size - al.piece_index * self.piece)
        blk = 16384 if self.piece >= 16384 else self.piece
        self.total += max(0, min(blk, piece_len - al.block_index * blk))
        self.blocks += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-dir", required=True)
    ap.add_argument("--seed", action="store_true", help="this is the initial seed: the complete file is in --save-dir")
    ap.add_argument("--listen", required=True, type=split_hostport, help="IP:PORT to listen on and to bind outgoing connections to")
    ap.add_argument("--peers-expected", type=int, required=True, help="N, the number of downloading peers in the swarm")
    ap.add_argument("--json-out", required=True, help="final counters are written here on SIGTERM")
    ap.add_argument("--label", default="", help="free text copied into every JSON line (e.g. the namespace name)")
    ap.add_argument("--super-seed", action="store_true", help="seed only: BEP 16 super-seeding; measured ~2x slower here (README), off by default")
    ap.add_argument("--seed-choking", default="fastest_upload", choices=["round_robin", "fastest_upload", "anti_leech"])
    ap.add_argument("--suggest-mode", default="no_piece_suggestions", choices=["no_piece_suggestions", "suggest_read_cache"])
    ap.add_argument("--unchoke-slots", type=int, default=None, help="default -1 = unlimited (>= N)")
    ap.add_argument("--max-out-request-queue", type=int, default=1500)
    ap.add_argument("--request-queue-time", type=int, default=3, help="seconds of download the request queue should cover")
    ap.add_argument("--reannounce-s", type=float, default=2.0,
                    help="while downloading and connected to fewer than N peers, force a re-announce this often")
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="hard bound on the lifetime (exit 2)")
    ap.add_argument("--upload-limit", type=int, default=0, help="bytes/s, loopback experiments only (the testbed shapes with tc)")
    ap.add_argument("--download-limit", type=int, default=0, help="bytes/s, loopback experiments only")
    ap.add_argument("--aio-threads", type=int, default=0)
    ap.add_argument("--allow-existing", action="store_true", help="leecher: accept data already in --save-dir")
    ap.add_argument("--start-at", type=float, default=0.0,
                    help="unix time: set up (session, listen socket, torrent added paused) and start the torrent "
                         "at this moment; takes process start-up out of the measurement (namespaces share one clock)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    ip, port = a.listen
    role = "seed" if a.seed else "leecher"
    stop = {"sig": None}

    def on_signal(signum, _frame):
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def early_fail(msg):
        """Fatal error before the session runs: still leave an "error" JSON."""
        log(msg)
        doc = {"client": CLIENT, "event": "error", "role": role, "label": a.label,
               "listen": "%s:%d" % (ip, port), "peers_expected": a.peers_expected,
               "t_proc": T_PROC, "t_end": time.time(), "complete": False, "error": msg}
        with open(a.json_out, "w") as f:
            f.write(json.dumps(doc) + "\n")
        emit(doc)
        return 1

    try:
        ti = lt.torrent_info(a.torrent)
    except RuntimeError as e:
        return early_fail("cannot read torrent %s: %s" % (a.torrent, e))
    os.makedirs(a.save_dir, exist_ok=True)
    if a.seed:
        # seed_mode skips the initial hash check; make sure the data is there.
        fs = ti.files()
        for i in range(fs.num_files()):
            p = os.path.join(a.save_dir, fs.file_path(i))
            if not os.path.isfile(p) or os.path.getsize(p) != fs.file_size(i):
                return early_fail("seed: missing or wrong-sized file %s" % p)

    elif not a.allow_existing:
        # a leftover file from an earlier run would be hash-checked and make
        # this "leecher" complete at once
        fs = ti.files()
        for i in range(fs.num_files()):
            p = os.path.join(a.save_dir, fs.file_path(i))
            if os.path.exists(p):
                return early_fail("leecher: %s exists already (use a fresh --save-dir per run, or --allow-existing)" % p)

    settings = build_settings(a, ip, port)
    # flags=0: no default plugins -> no ut_pex, no ut_metadata, no smart_ban.
    ses = lt.session(settings, flags=0)
    if a.upload_limit or a.download_limit:
        # loopback/LAN peers are in the unlimited "local" peer class by default;
        # put every address in the global class so that the limits apply.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)

    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = a.save_dir
    tf = lt.torrent_flags
    flags = atp.flags
    flags &= ~tf.auto_managed  # never queued/paused by the session
    flags &= ~tf.paused
    flags |= tf.disable_pex | tf.disable_dht | tf.disable_lsd
    if a.seed:
        flags |= tf.seed_mode  # no initial hash check (pieces verified on first upload)
        if a.super_seed:
            flags |= tf.super_seeding
    pending_start = a.start_at > 0 and time.time() < a.start_at
    if pending_start:
        flags |= tf.paused  # no announce, no connections until --start-at
    elif a.start_at > 0:
        log("--start-at is %.3f s in the past: starting at once" % (time.time() - a.start_at))
    atp.flags = flags
    t_session = time.time()
    h = ses.add_torrent(atp)
    t_added = time.time()
    t_start = t_added
    startup = {"import_s": round(T_IMPORTED - T_PROC, 3), "session_s": round(t_session - T_IMPORTED, 3),
               "add_s": round(t_added - t_session, 3)}
    if a.start_at > 0 and not pending_start:
        startup["late_s"] = round(t_added - a.start_at, 3)
    if t_added - T_PROC > 2.0:
        log("slow start (CPU starved?): %s" % startup)

    state = {
        "listening": False, "t_listen": None, "t_first_announce": None,
        "t_first_reply": None, "tracker_replies": 0, "tracker_errors": 0,
        "complete": False, "t_done": None, "peers_max": 0, "seeding_emitted": False,
        "fatal": None, "warned_tracker": False,
    }
    seedbytes = SeedBytes(ti)
    last_reannounce = t_start  # libtorrent announces by itself at add time
    last_progress = 0.0
    done_line = None

    def base(event):
        return {"client": CLIENT, "event": event, "role": role, "label": a.label,
                "listen": "%s:%d" % (ip, port), "peers_expected": a.peers_expected}

    def counters(st):
        return {
            "payload_down": st.total_payload_download,
            "payload_up": st.total_payload_upload,
            "total_down": st.total_download,
            "total_up": st.total_upload,
            "redundant_bytes": st.total_redundant_bytes,
            "failed_bytes": st.total_failed_bytes,
        }

    def handle_alerts():
        for al in ses.pop_alerts():
            t = time.time()
            if isinstance(al, lt.listen_succeeded_alert):
                if state["t_listen"] is None:
                    state["t_listen"] = t
                state["listening"] = True
                log("listening: %s" % al.message())
            elif isinstance(al, lt.listen_failed_alert):
                state["fatal"] = "listen failed: %s" % al.message()
            elif isinstance(al, lt.tracker_announce_alert):
                if state["t_first_announce"] is None:
                    state["t_first_announce"] = t
                if a.verbose:
                    log("announce: %s" % al.message())
            elif isinstance(al, lt.tracker_reply_alert):
                state["tracker_replies"] += 1
                if state["t_first_reply"] is None:
                    state["t_first_reply"] = t
                    log("first tracker reply after %.3f s: %s" % (t - T_PROC, al.message()))
                elif a.verbose:
                    log("tracker reply: %s" % al.message())
            elif isinstance(al, (lt.tracker_error_alert, lt.tracker_warning_alert)):
                state["tracker_errors"] += 1
                log("tracker: %s" % al.message())
            elif isinstance(al, lt.block_finished_alert):
                seedbytes.on_block(al)
            elif isinstance(al, lt.torrent_finished_alert):
                if not a.seed and not state["complete"]:
                    state["complete"] = True
                    state["t_done"] = t
            elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                state["fatal"] = al.message()
            elif a.verbose:
                log(al.message())

    deadline = T_PROC + a.max_seconds
    exit_code = 0
    while True:
        now = time.time()
        if stop["sig"] is not None:
            break
        if now >= deadline:
            log("--max-seconds (%.0f) elapsed" % a.max_seconds)
            exit_code = 2
            break
        wait_ms = 100
        if pending_start:
            wait_ms = max(0, min(100, int((a.start_at - now) * 1000)))
        ses.wait_for_alert(wait_ms)
        if pending_start and time.time() >= a.start_at:
            h.resume()
            t_start = time.time()
            last_reannounce = t_start
            pending_start = False
            startup["late_s"] = round(t_start - a.start_at, 3)
        handle_alerts()
        if state["fatal"]:
            log("fatal: %s" % state["fatal"])
            exit_code = 1
            break

        now = time.time()
        if not pending_start and state["t_first_reply"] is None and not state["warned_tracker"] and now - t_start > 5:
            state["warned_tracker"] = True
            log("no tracker reply 5 s after start (announce sent: %s): is the tracker up and reachable "
                "from this namespace, and is the info-hash in its whitelist?" % (state["t_first_announce"] is not None))
        st = h.status()
        state["peers_max"] = max(state["peers_max"], st.num_peers)

        if a.seed and not pending_start and state["t_first_reply"] is None and now - last_reannounce >= a.reannounce_s:
            # tracker not reached yet (e.g. started after us): retry quickly
            # instead of libtorrent's exponential tracker back-off.
            h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
            last_reannounce = now

        if a.seed and not pending_start and not state["seeding_emitted"] and state["listening"] and st.is_seeding:
            state["seeding_emitted"] = True
            line = base("seeding")
            line.update({"t": now, "t_proc": T_PROC, "startup_s": round(now - T_PROC, 3),
                         "startup": startup,
                         "super_seed": bool(a.super_seed), "piece_size": ti.piece_length(),
                         "file_bytes": ti.total_size()})
            emit(line)

        if not a.seed and not state["complete"] and not pending_start:
            # tracker re-announce while we are not connected to everyone
            if st.num_peers < a.peers_expected and now - last_reannounce >= a.reannounce_s:
                h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
                last_reannounce = now
            if st.is_seeding or st.is_finished:
                state["complete"] = True
                state["t_done"] = state["t_done"] or now

        if not a.seed and state["complete"] and done_line is None:
            handle_alerts()  # count the last blocks' alerts before reporting
            done_line = base("complete")
            done_line.update({
                "t_proc": T_PROC, "t_start": t_start, "t_done": state["t_done"],
                "seconds": round(state["t_done"] - t_start, 3),
                "t_first_announce": state["t_first_announce"],
                "first_announce_s": None if state["t_first_announce"] is None
                else round(state["t_first_announce"] - T_PROC, 3),
                "announce_after_start_s": None if state["t_first_announce"] is None
                else round(state["t_first_announce"] - t_start, 3),
                "start_at": a.start_at or None,
                "file_bytes": ti.total_size(), "piece_size": ti.piece_length(),
                "from_seed_bytes": seedbytes.total,
                "peers_max": state["peers_max"], "tracker_replies": state["tracker_replies"],
                "startup": startup,
            })
            done_line.update(counters(st))
            emit(done_line)

        if a.verbose and now - last_progress >= 1.0:
            last_progress = now
            log("progress %.1f%% peers=%d down=%.1fMB/s up=%.1fMB/s" % (
                st.progress * 100, st.num_peers, st.download_payload_rate / 1e6, st.upload_payload_rate / 1e6))

    # ---- shutdown: final counters -----------------------------------------
    st = h.status()
    final = base("final" if exit_code == 0 else ("timeout" if exit_code == 2 else "error"))
    final.update({
        "t_proc": T_PROC, "t_start": t_start, "t_end": time.time(),
        "t_listen": state["t_listen"], "t_first_announce": state["t_first_announce"],
        "t_first_reply": state["t_first_reply"],
        "first_announce_s": None if state["t_first_announce"] is None else round(state["t_first_announce"] - T_PROC, 3),
        "announce_after_start_s": None if state["t_first_announce"] is None
        else round(state["t_first_announce"] - t_start, 3),
        "start_at": a.start_at or None,
        "complete": bool(a.seed or state["complete"]), "t_done": state["t_done"],
        "seconds": None if state["t_done"] is None else round(state["t_done"] - t_start, 3),
        "file_bytes": ti.total_size(), "piece_size": ti.piece_length(),
        "from_seed_bytes": None if a.seed else seedbytes.total,
        "peers_max": state["peers_max"], "tracker_replies": state["tracker_replies"],
        "tracker_errors": state["tracker_errors"], "signal": stop["sig"],
        "error": state["fatal"], "startup": startup,
    })
    final.update(counters(st))
    tmp = a.json_out + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(final) + "\n")
    os.replace(tmp, a.json_out)
    emit(final)
    # Tell the tracker we leave (event=stopped), bounded by stop_tracker_timeout
    # (1 s), then skip the rest of the teardown.
    t_stop = time.time()
    try:
        ses.pause()
        del h
        del ses
    except Exception:  # noqa: BLE001
        pass
    if a.verbose:
        log("session closed in %.3f s" % (time.time() - t_stop))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


if __name__ == "__main__":
    sys.exit(main())
