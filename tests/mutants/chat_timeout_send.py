# lab: 05-chat
# caught-by: slow_reader
# mistake: send() under one global lock with a 5 s timeout: partial sends lose bytes, and every slow client stalls everyone for 5 s
import socket, sys, threading

lock = threading.Lock()
clients = {}  # socket -> nickname

def broadcast(data, sender=None):
    # One lock around the whole broadcast, so lines never interleave...
    with lock:
        for c in list(clients):
            if c is sender:
                continue
            try:
                # BUG: send() may take only part of `data` (the count it returns is
                # ignored), and it waits up to 5 s for a full client while holding
                # the lock that every other client's thread needs.
                c.send(data)
            except OSError:  # timed out (not reading for 5 s) or gone: drop it
                clients.pop(c, None)
                try:
                    c.shutdown(socket.SHUT_RDWR)  # its thread reads EOF, announces it
                except OSError:
                    pass

def serve(conn):
    conn.settimeout(5)  # "a client that does not read for 5 s is dropped"
    buf = b""
    nick = None
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue  # just idle
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
                    broadcast(b"<" + nick + b"> " + line + b"\n", conn)
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
