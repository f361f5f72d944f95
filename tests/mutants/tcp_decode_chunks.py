# lab: 01-tcp-echo
# caught-by: utf8_split
# mistake: each chunk decoded as UTF-8 on its own
import socket, sys, threading

def serve(conn):
    with conn:
        buf = ""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data.decode("utf-8")  # BUG: a split character is not valid alone
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                conn.sendall(("Received: " + line + "\n").encode("utf-8"))

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
