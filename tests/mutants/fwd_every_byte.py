# lab: 07-serial-stream
# caught-by: buffers_of_k
# mistake: --buffer ignored: whatever a read returns is sent at once
import os, socket, sys, threading

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
clients = []
lock = threading.Lock()

def forward():
    while True:
        data = os.read(fd, 4096)
        with lock:
            for c in list(clients):
                try:
                    c.sendall(data)  # BUG: no buffer of K: each read leaves alone
                except OSError:
                    clients.remove(c)

threading.Thread(target=forward, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        clients.append(conn)
