#!/usr/bin/env python3
"""Lab 03's exercise, written from the lesson alone (labs/03-udp-loss/lesson.md).

The integration tests run it as a real peer behind `lab impair`, fed by `lab run 03
--role sender`: proof that the lesson is enough to write a receiver that counts exactly,
and that our sender and relay speak the documented format.

Usage: student_receiver.py --port N
"""
import json
import socket
import struct
import sys


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(30)  # a UDP receiver needs a timeout: nothing says the sender is gone
    session = None
    seen = set()
    highest = -1
    received = duplicates = out_of_order = 0
    while True:
        data, addr = sock.recvfrom(65535)
        if len(data) < 32:
            continue  # foreign: too short for the header
        magic, version, kind, _reserved, sess, seq, _sent = struct.unpack("!4sBBHQQQ", data[:32])
        if magic != b"LAB3" or version != 1 or kind not in (0, 1):
            continue  # foreign: not a probe
        if session is None:
            if kind != 0:
                continue  # an end marker cannot start a session
            session = (sess, addr)
        if (sess, addr) != session:
            continue  # foreign: another session or sender
        if kind == 1:
            report = {"received": received, "lost": seq - received,
                      "duplicates": duplicates, "out_of_order": out_of_order}
            print(json.dumps(report), flush=True)
            return 0
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            out_of_order += 1
        highest = max(highest, seq)
        received += 1


if __name__ == "__main__":
    sys.exit(main())
