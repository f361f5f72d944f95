# lab: 07-serial-stream
# caught-by: late_client_fresh
# mistake: a stale backlog: every sample is kept and a new client first gets the history
import os, socket, sys, threading

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = int(arg("--buffer"))
fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
history = bytearray()
clients = []
lock = threading.Lock()

def forward():
    while True:
        data = os.read(fd, 4096)
        with lock:
            history.extend(data)
            for c in list(clients):
                c[1] += data
                while len(c[1]) >= k:
                    try:
                        c[0].sendall(c[1][:k])
                    except OSError:
                        clients.remove(c)
                        break
                    del c[1][:k]

threading.Thread(target=forward, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        clients.append([conn, bytearray(history)])  # BUG: starts with every old sample
