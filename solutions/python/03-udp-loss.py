"""Reference solution for 03-udp-loss: a UDP receiver that counts loss, duplicates and
reordering exactly, and reports when its sender's first end marker arrives.

Run: python3 03-udp-loss.py --port 7003
then: lab run 03 --role sender --connect 127.0.0.1:7003 --count 1000 --rate 10000
(at full speed, the default, its socket buffer overflows and the kernel drops some)
"""
import json
import socket
import struct
import sys

HEADER = struct.Struct("!4sBBHQQQ")  # magic, version, kind, reserved, session, seq, time
# How far back a datagram can arrive: the contract says never more than 1,000 below the
# highest sequence number received, so remembering the last 4,096 is enough, and the
# memory stays the same however long the run.
WINDOW = 4096


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    # A UDP receiver needs a timeout: nothing else says that the sender is gone.
    sock.settimeout(30)
    session = None  # (session id, sender address) of the first data datagram
    # slots[seq % WINDOW] is the last sequence number stored in that slot: a repeat finds
    # itself there. A set of every sequence number would grow with the run.
    slots = [None] * WINDOW
    highest = -1
    received = duplicates = out_of_order = 0
    while True:
        try:
            # 65535 holds any datagram: a smaller buffer would cut long ones.
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            print("no end marker within 30 s: is the sender running?", file=sys.stderr)
            return 1
        if len(data) < HEADER.size:
            continue  # foreign: too short to be a probe
        magic, version, kind, _reserved, sess, seq, _sent = HEADER.unpack_from(data)
        if magic != b"LAB3" or version != 1 or kind not in (0, 1):
            continue  # foreign: not a probe
        if session is None:
            if kind != 0:
                continue  # an end marker does not start a session
            session = (sess, addr)
        if (sess, addr) != session:
            continue  # foreign: another session or another sender
        if kind == 1:
            # The end marker's sequence field is how many data datagrams were sent:
            # the only way to see losses at the tail.
            report = {"received": received, "lost": seq - received,
                      "duplicates": duplicates, "out_of_order": out_of_order}
            print(json.dumps(report), flush=True)
            return 0
        if highest - seq >= WINDOW:
            continue  # too old to tell a first copy from a repeat (never sent by the grader)
        if slots[seq % WINDOW] == seq:
            duplicates += 1  # counted apart: a duplicate must not hide a loss
            continue
        slots[seq % WINDOW] = seq
        if seq < highest:
            out_of_order += 1  # lower than the highest so far, not just the previous
        highest = max(highest, seq)
        received += 1


if __name__ == "__main__":
    sys.exit(main())
