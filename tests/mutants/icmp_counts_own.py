# lab: 04-raw-icmp
# caught-by: own_requests
# mistake: its own echo requests (type 8), seen on loopback, counted as replies
"""A mini ping on a raw socket: the reference solution of 04-raw-icmp.

Usage: python3 04-raw-icmp.py --target ADDR --count N [--timeout S] [--size N]
Prints `seq=SEQ ttl=TTL time=MS ms` per reply, then `N transmitted, M received`;
exits 0 when something came back, 1 when nothing did.
"""
import argparse
import os
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 8, 0


def checksum(data: bytes) -> int:
    """RFC 1071: ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"  # the odd byte is the HIGH half of a zero-padded word
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)  # end-around carry
    return ~total & 0xFFFF


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
    sent = {}  # seq -> send time
    answered = set()
    received = 0
    interval = 0.2
    next_send = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        if seq < a.count and now >= next_send:
            seq += 1
            sent[seq] = time.monotonic()
            sock.sendto(echo_request(ident, seq, a.size), (a.target, 0))
            next_send += interval
            continue
        end = max(sent.values()) + a.timeout
        if seq >= a.count and (len(answered) == a.count or now >= end):
            break
        wake = end if seq >= a.count else min(end, next_send)
        sock.settimeout(max(wake - now, 0.001))
        try:
            packet = sock.recv(65535)
        except socket.timeout:
            continue
        got = time.monotonic()
        ihl = (packet[0] & 0x0F) * 4  # the IPv4 header may carry options
        ttl = packet[8]
        icmp = packet[ihl:]
        if len(icmp) < 8 or checksum(icmp) != 0:
            continue  # too short, or damaged
        kind, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if kind not in (ECHO_REPLY, ECHO_REQUEST) or rid != ident or rseq not in sent:  # BUG: type 8 too
            continue  # our own request seen on loopback, someone else's reply, ...
        ms = (got - sent[rseq]) * 1000
        dup = rseq in answered
        if not dup:
            answered.add(rseq)
            received += 1
        print("%d bytes from %s: seq=%d ttl=%d time=%.3f ms%s"
              % (len(icmp), a.target, rseq, ttl, ms, " (DUP!)" if dup else ""), flush=True)
    print("%d transmitted, %d received" % (a.count, received), flush=True)
    return 0 if received else 1


if __name__ == "__main__":
    sys.exit(main())
