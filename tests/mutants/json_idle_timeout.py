# lab: 06-json-to-file
# caught-by: idle_sender
# mistake: a 5 s socket timeout on each sender: a sender that pauses between records is cut off
import json
import os
import socket
import sys
import threading


def arg(name):
    return sys.argv[sys.argv.index(name) + 1]


lock = threading.Lock()
saved = set()  # (sender, seq) of every record in the file


def load(path):
    """Reads the file back: learn what it holds, cut a torn last line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    end = data.rfind(b"\n") + 1
    if end < len(data):
        # A last line without its newline: a write that never finished. It was never
        # acknowledged (acks follow the fsync), so its sender will send it again.
        with open(path, "r+b") as f:
            f.truncate(end)
    for line in data[:end].splitlines():
        try:
            r = json.loads(line)
            saved.add((r.get("sender"), r["seq"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # not a record of ours: keep it, ignore it


def check(line):
    """The record in `line`, or the reason it is not one."""
    try:
        r = json.loads(line)  # bytes: decoded as UTF-8; bad UTF-8 raises ValueError too
    except ValueError as e:
        return None, "not JSON: %s" % e
    if not isinstance(r, dict):
        return None, "not a JSON object"
    seq = r.get("seq")
    if type(seq) is not int:  # bool is an int in Python: exclude it
        return None, "seq must be an integer"
    sender = r.get("sender")
    if sender is not None and not isinstance(sender, str):
        return None, "sender must be a string"
    return r, None


def serve(conn, out):
    conn.settimeout(5)  # BUG: a sender quiet for 5 s gets socket.timeout and is dropped
    buf = b""
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:  # reset, or the timeout
                return
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            replies = []
            with lock:
                fresh = []
                for line in lines:
                    r, why = check(line)
                    if r is None:
                        replies.append(("error - %s\n" % why.replace("\n", " ")).encode())
                        continue
                    key = (r.get("sender"), r["seq"])
                    if key not in saved:  # a resend is acknowledged, not saved again
                        fresh.append(json.dumps(r, ensure_ascii=False).encode() + b"\n")
                        saved.add(key)
                    replies.append(b"ok %d\n" % r["seq"])
                if fresh:
                    out.write(b"".join(fresh))
                    out.flush()  # into the kernel: survives a kill of this process
                    os.fsync(out.fileno())  # onto the disk: survives a power cut
            try:
                conn.sendall(b"".join(replies))
            except ConnectionError:
                return


def main():
    port, path = int(arg("--port")), arg("--out")
    load(path)
    out = open(path, "ab")
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, out), daemon=True).start()


if __name__ == "__main__":
    main()
