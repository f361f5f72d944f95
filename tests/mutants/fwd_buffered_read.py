# lab: 07-serial-stream
# caught-by: sample_age
# mistake: extra latency: a buffered file's read(1024) waits until 1024 bytes have
# arrived (over a second at 896 samples/s) before the program sees any of them
import socket, sys, threading

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = int(arg("--buffer"))
dev = open(arg("--serial"), "rb")  # BUG: buffered: read(n) blocks for all n bytes
clients = []
lock = threading.Lock()

def forward():
    while True:
        data = dev.read(1024)
        with lock:
            for c in list(clients):
                c[1] += data
                while len(c[1]) >= k:
                    try:
                        c[0].sendall(c[1][:k])
                    except OSError:
                        clients.remove(c)
                        break
                    c[1] = c[1][k:]

threading.Thread(target=forward, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        clients.append([conn, b""])
