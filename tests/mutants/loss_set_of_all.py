# lab: 03-udp-loss
# caught-by: bounded_memory
# mistake: every sequence number ever received is kept in a set: memory grows with the run
import json, socket, struct, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
sock.settimeout(30)
session, seen, highest = None, set(), -1  # BUG: seen grows by one entry per datagram
received = duplicates = out_of_order = 0
while True:
    data, addr = sock.recvfrom(65535)
    if len(data) < 32:
        continue
    magic, version, kind, _, sess, seq, _ = struct.unpack("!4sBBHQQQ", data[:32])
    if magic != b"LAB3" or version != 1 or kind not in (0, 1):
        continue
    if session is None:
        if kind != 0:
            continue
        session = (sess, addr)
    if (sess, addr) != session:
        continue
    if kind == 1:
        print(json.dumps({"received": received, "lost": seq - received,
                          "duplicates": duplicates, "out_of_order": out_of_order}), flush=True)
        sys.exit(0)
    if seq in seen:
        duplicates += 1
        continue
    seen.add(seq)
    if seq < highest:
        out_of_order += 1
    highest = max(highest, seq)
    received += 1
