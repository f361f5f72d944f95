"""Exercise 04-raw-icmp: a mini ping on a raw socket.

The contract (what `lab check 04 --lang python` tests): started as
`python3 04-raw-icmp.py --target ADDR --count N [--timeout S] [--size N]`, send N ICMP
echo requests (type 8, code 0, RFC 1071 checksum, one identifier, sequence 1..N, --size
data bytes) to ADDR, one per 0.2 s; for each echo reply that is yours print a line with
`seq=SEQ ttl=TTL time=MS ms`; stop --timeout seconds after the last request (or when all
are answered); print `N transmitted, M received`; exit 0, or 1 when nothing came back.

A raw socket needs CAP_NET_RAW. `lab check` runs your program inside a namespace of its
own where it has it; to try it by hand: `unshare -Urn sh -c 'ip link set lo up;
python3 04-raw-icmp.py --target 127.0.0.1 --count 3'` (or sudo).

Read the lesson: `lab show 04`. Stuck? `lab hint 04`.
"""
import argparse
import os
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    # TODO: sum the 16-bit big-endian words (pad an odd length with one zero byte at
    # the END), fold the carries back in, and return the complement (& 0xFFFF).
    return 0


def echo_request(ident: int, seq: int, size: int) -> bytes:
    data = bytes((0x10 + i) & 0xFF for i in range(size))
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq)
    c = checksum(header + data)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, c, ident, seq) + data


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=56)
    a = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    received = 0
    for seq in range(1, a.count + 1):
        sent = time.monotonic()
        sock.sendto(echo_request(ident, seq, a.size), (a.target, 0))
        # TODO: receive until the reply to `seq` arrives or the time is up
        # (sock.settimeout). What arrives starts with the IPv4 header: where does ICMP
        # start? Skip what is not your reply (your own request comes back on loopback,
        # other programs' replies have another identifier). For yours print e.g.
        #   print("seq=%d ttl=%d time=%.3f ms" % (seq, ttl, ms), flush=True)
        time.sleep(0.2)
    print("%d transmitted, %d received" % (a.count, received), flush=True)
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main())
