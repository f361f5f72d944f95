# lab: 01-tcp-echo
# caught-by: fd_leak
# mistake: sockets of finished clients are never closed
import socket, sys, threading

finished = []

def serve(conn):
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            finished.append(conn)  # BUG: kept forever, never closed
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            conn.sendall(b"Received: " + line + b"\n")

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
