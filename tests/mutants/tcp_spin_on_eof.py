# lab: 01-tcp-echo
# caught-by: eof_half_close
# mistake: spinning on EOF (recv() keeps returning b'')
import socket, sys, threading

def serve(conn):
    buf = b""
    closed = False
    while True:
        data = conn.recv(65536)
        if not data:
            if not closed:
                conn.shutdown(socket.SHUT_WR)  # the client sees EOF...
                closed = True
            continue  # BUG: ...but this loop spins on recv() == b"" forever
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
