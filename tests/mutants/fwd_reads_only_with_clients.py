# lab: 07-serial-stream
# caught-by: late_client_fresh
# mistake: the device is read only while a client is connected: what the Arduino sent
# meanwhile waits in the device and reaches the next client as a stale backlog
import os, socket, sys, threading

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = int(arg("--buffer"))
fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
clients = []
lock = threading.Lock()
someone = threading.Event()

def forward():
    while True:
        someone.wait()  # BUG: no client, no reading
        data = os.read(fd, 4096)
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
            if not clients:
                someone.clear()

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
        someone.set()
