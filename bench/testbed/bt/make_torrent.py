#!/usr/bin/python3
"""Create a v1 .torrent for one file with libtorrent's create_torrent.

    /usr/bin/python3 make_torrent.py FILE --piece-size BYTES --tracker URL -o FILE.torrent

Prints the v1 info-hash (40 hex digits) on stdout: put it in opentracker's whitelist.
Run with the system /usr/bin/python3 (python3-libtorrent is installed for it only).
"""
import argparse
import os
import re
import sys

import libtorrent as lt


def parse_size(s):
    """'65536', '64KiB', '64k', '1MiB', '1m' -> bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?", s.strip().lower())
    if not m:
        raise ValueError("bad size: %r" % s)
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--piece-size", default="65536", help="bytes (power of two >= 16 KiB; 64KiB, 256KiB, 1MiB accepted). Default 64 KiB")
    ap.add_argument("--tracker", action="append", required=True, help="announce URL (repeatable)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--hash-out", help="also append the info-hash to this file (opentracker whitelist)")
    a = ap.parse_args()

    piece = parse_size(a.piece_size)
    if piece < 16384 or piece & (piece - 1):
        sys.exit("make_torrent.py: --piece-size must be a power of two >= 16384, got %d" % piece)
    path = os.path.abspath(a.file)
    if not os.path.isfile(path):
        sys.exit("make_torrent.py: not a file: %s" % a.file)

    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1_only: opentracker and transmission 3.00 speak BitTorrent v1 only.
    flags = getattr(lt.create_torrent, "v1_only", 0)
    ct = lt.create_torrent(fs, piece, flags=flags) if flags else lt.create_torrent(fs, piece)
    for tier, url in enumerate(a.tracker):
        ct.add_tracker(url, tier)
    ct.set_creator("edgeswarm bench/testbed/bt")
    ct.set_priv(False)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    data = lt.bencode(ct.generate())
    tmp = a.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, a.output)

    ti = lt.torrent_info(a.output)
    ih = str(ti.info_hashes().v1) if hasattr(ti, "info_hashes") else str(ti.info_hash())
    if a.hash_out:
        with open(a.hash_out, "a") as f:
            f.write(ih + "\n")
    print(ih)


if __name__ == "__main__":
    main()
