# lab: 01-tcp-echo
# caught-by: restart_same_port
# mistake: no SO_REUSEADDR before bind()
import socket, sys, threading

def serve(conn):
    with conn:
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                conn.sendall(b"Received: " + line + b"\n")

srv = socket.socket()  # BUG: no SO_REUSEADDR
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
