# lab: 01-tcp-echo
# caught-by: many_clients
# mistake: replies go to a shared (global) socket
import socket, sys, threading

conn = None

def serve(mine):
    with mine:
        buf = b""
        while True:
            data = mine.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                conn.sendall(b"Received: " + line + b"\n")  # BUG: global, the newest client

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
