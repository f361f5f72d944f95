# lab: 07-serial-stream
# caught-by: quiet_serial_idle
# mistake: busy-waiting: the device is polled non-blocking in a loop that never sleeps
import os, socket, sys

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = int(arg("--buffer"))
fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
srv.setblocking(False)
clients = []
while True:  # BUG: nothing here ever blocks: 100% of a CPU while the line is quiet
    try:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clients.append([conn, b""])
    except BlockingIOError:
        pass
    try:
        data = os.read(fd, 4096)
    except BlockingIOError:
        continue
    for c in list(clients):
        c[1] += data
        while len(c[1]) >= k:
            try:
                c[0].sendall(c[1][:k])
            except OSError:
                clients.remove(c)
                break
            c[1] = c[1][k:]
