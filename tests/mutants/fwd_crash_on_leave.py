# lab: 07-serial-stream
# caught-by: client_leaves
# mistake: a send error from a client that left (ConnectionResetError, BrokenPipeError)
# is not caught: it ends the program, and every other client with it
import os, socket, sys, threading

def arg(n):
    return sys.argv[sys.argv.index(n) + 1]

k = int(arg("--buffer"))
fd = os.open(arg("--serial"), os.O_RDONLY | os.O_NOCTTY)
clients = []
lock = threading.Lock()

def forward():
    try:
        while True:
            data = os.read(fd, 4096)
            with lock:
                for c in clients:
                    c[1] += data
                    while len(c[1]) >= k:
                        c[0].sendall(c[1][:k])  # BUG: no try/except around the send
                        del c[1][:k]
    finally:
        os._exit(1)

threading.Thread(target=forward, daemon=True).start()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(arg("--port"))))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        clients.append([conn, bytearray()])
