"""Exercise 06-json-to-file: a receiver that saves every JSON record exactly once.

The contract (what `lab check 06 --lang python` tests): started as
`python3 06-json-to-file.py --port N --out FILE`, listen on 127.0.0.1:N and append
records to FILE. Each line a client sends is a JSON object with an integer `seq` (and a
string `sender`):
  - save it as ONE line of JSON in FILE, then reply `ok SEQ` and a newline (only after
    it is written: a SIGKILL right after the reply must not lose it);
  - a line that is not a JSON object with an integer seq gets `error ...`, is not
    saved, and the connection stays open;
  - a record whose (sender, seq) is already in FILE (a resend) gets `ok SEQ` again and
    is not saved again, also after a restart on the same FILE;
  - lines arrive split and merged in any way; several clients at once.

Read the lesson: `lab show 06`. Stuck? `lab hint 06`.
"""
import json
import os
import socket
import sys
import threading


def arg(name):
    return sys.argv[sys.argv.index(name) + 1]


saved = set()  # (sender, seq) of every record in the file


def load(path):
    # TODO: read FILE back (if it exists) and put every (sender, seq) in it into `saved`,
    # so a resend after a restart is recognised.
    pass


def serve(conn, out):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            # TODO: keep a buffer; for each complete line (up to b"\n"):
            #   json.loads(line) -> must be a dict with an int "seq", else reply b"error ...\n";
            #   if (sender, seq) is new: out.write(json.dumps(r).encode() + b"\n"),
            #   out.flush() (and os.fsync(out.fileno())), remember it;
            #   then reply b"ok %d\n" % seq.


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
        # TODO: several clients at once (and one lock around the file and `saved`).
        serve(conn, out)


if __name__ == "__main__":
    main()
