"""Exercise 01-tcp-echo: a TCP line echo server.

The contract (what `lab check 01 --lang python` tests): started as
`python3 01-tcp-echo.py --port N`, listen on 127.0.0.1:N; for each newline-terminated
line L a client sends, reply `Received: L` and a newline; serve several clients at once.
Lines are bytes, not text: every byte comes back unchanged (bytes that are not UTF-8,
NUL, a carriage return before the newline), lines may be several MiB long, and every
reply must arrive whole, however slowly the client reads.

Read the lesson: `lab show 01`. Stuck? `lab hint 01`.
"""
import socket
import sys


def serve(conn):
    # TODO: recv() bytes; for every complete line (ending in b"\n") send back
    # b"Received: " + line + b"\n". One recv() may hold half a line or several lines;
    # recv() returning b"" means the client closed its side.
    conn.close()


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", port))
    srv.listen()
    while True:
        conn, _ = srv.accept()
        # TODO: several clients must be served at once (a thread per client?).
        serve(conn)


if __name__ == "__main__":
    main()
