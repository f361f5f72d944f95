# lab: 05-chat
# caught-by: two_clients
# mistake: lines go out as `NICK: TEXT` instead of `<NICK> TEXT`
import socket, sys, threading

lock = threading.Lock()
clients = {}  # socket -> nickname

def broadcast(line, sender=None):
    with lock:
        targets = [c for c in clients if c is not sender]
    for c in targets:
        try:
            c.sendall(line)
        except OSError:  # gone, or not reading for 2 s: drop it
            with lock:
                clients.pop(c, None)
            try:
                c.shutdown(socket.SHUT_RDWR)  # its thread reads EOF and announces it
            except OSError:
                pass

def serve(conn):
    conn.settimeout(None)
    # A send timeout: a client that stops reading is dropped instead of blocking us.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, (2).to_bytes(8, "little") + (0).to_bytes(8, "little"))
    with conn:
        buf = b""
        nick = None
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if nick is None:
                    nick = line
                    with lock:
                        clients[conn] = nick
                    broadcast(b"* " + nick + b" joined\n", conn)
                else:
                    broadcast(nick + b": " + line + b"\n", conn)  # BUG: not the format
        with lock:
            clients.pop(conn, None)
        if nick is not None:
            broadcast(b"* " + nick + b" left\n")

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
