# lab: 01-tcp-echo
# caught-by: slow_reader
# mistake: a socket timeout (settimeout) makes send() return early when the buffer is full; the count is ignored
import socket, sys, threading

def serve(conn):
    conn.settimeout(5)  # with a timeout, send() takes only what fits in the buffer
    with conn:
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                conn.send(b"Received: " + line + b"\n")  # BUG: the count is ignored

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
