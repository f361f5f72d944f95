"""Exercise 03-udp-loss: a UDP receiver that counts loss, duplicates and reordering.

The contract (what `lab check 03 --lang python` tests): started as
`python3 03-udp-loss.py --port N`, bind UDP 127.0.0.1:N and receive the lab's probe
datagrams (a 32-byte big-endian header: magic LAB3, version 1, kind 0 data / 1 end
marker, 64-bit session id, 64-bit sequence number, 64-bit send time). Keep to the session
of the first data datagram, from its sender's address (IP and port), and ignore
everything else without crashing. Memory must stay bounded however long the run: no
datagram arrives more than 1,000 below the highest sequence number received. When the first
end marker of the session arrives (its sequence field is the number of data datagrams
sent), print ONE line of JSON and exit 0:

    {"received": R, "lost": L, "duplicates": D, "out_of_order": O}

Read the lesson: `lab show 03`. Stuck? `lab hint 03`.
"""
import json
import socket
import struct
import sys


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    received = lost = duplicates = out_of_order = 0
    while True:
        data, addr = sock.recvfrom(65535)
        # TODO: what if the datagram is shorter than 32 bytes, or not a probe at all?
        magic, version, kind, _reserved, session, seq, _sent = struct.unpack("!4sBBHQQQ", data[:32])
        # TODO: keep to the session (and sender) of the first data datagram.
        if kind == 1:
            # TODO: lost = the sender's count (seq) - received.
            report = {"received": received, "lost": lost,
                      "duplicates": duplicates, "out_of_order": out_of_order}
            print(json.dumps(report), flush=True)
            return 0
        # TODO: a sequence number seen before is a duplicate, not a new datagram; a new
        # one lower than the highest so far is out of order. Remember only recent
        # sequence numbers: a set of all of them grows with the run.
        received += 1


if __name__ == "__main__":
    sys.exit(main())
