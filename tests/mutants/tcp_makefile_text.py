# lab: 01-tcp-echo
# caught-by: raw_bytes
# mistake: a text-mode file over the socket: decodes (fails on non-UTF-8) and turns \r\n and \r into \n
import socket, sys, threading

def serve(conn):
    with conn, conn.makefile("r") as f:  # BUG: text mode, universal newlines
        for line in f:
            conn.sendall(("Received: " + line.rstrip("\n") + "\n").encode())

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
