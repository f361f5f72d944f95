# lab: 07-serial-stream
# caught-by: two_clients
# mistake: one client at a time: the first client is served, the next never gets a byte
import os, socket, sys

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
k = int(arg("--buffer"))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    buf = b""
    try:
        while True:  # BUG: serves this client until it leaves; the others wait
            buf += os.read(fd, 4096)
            while len(buf) >= k:
                conn.sendall(buf[:k])
                buf = buf[k:]
    except OSError:
        conn.close()
