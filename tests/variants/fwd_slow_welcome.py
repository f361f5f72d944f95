# lab: 07-serial-stream
# variant: a new client starts getting samples only 0.8 s after it connects (a welcome thread that waits before adding it), each client fed by its own thread from a bounded deque
import collections, os, socket, sys, threading, time

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = max(1, int(arg("--buffer")))
fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
clients = []  # [conn, pending bytes, deque of full buffers, condition]
lock = threading.Lock()

def feed(c):
    conn, _, out, ready = c
    while True:
        with ready:
            while not out:
                ready.wait()
            data = out.popleft()
        try:
            conn.sendall(data)
        except OSError:
            with lock:
                clients.remove(c)
            conn.close()
            return

def welcome(conn):
    time.sleep(0.8)  # the newcomer waits; everyone else keeps streaming
    c = [conn, bytearray(), collections.deque(maxlen=4096), threading.Condition()]
    with lock:
        clients.append(c)  # its buffer starts empty: only samples read from now on
    feed(c)

def read_device():
    while True:
        data = os.read(fd, 4096)
        if not data:
            time.sleep(0.1)
            continue
        with lock:
            for c in clients:
                c[1] += data
                while len(c[1]) >= k:
                    with c[3]:
                        c[2].append(bytes(c[1][:k]))  # a full deque drops its oldest
                        c[3].notify()
                    del c[1][:k]

threading.Thread(target=read_device, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=welcome, args=(conn,), daemon=True).start()
