# lab: 01-tcp-echo
# caught-by: raw_bytes
# mistake: each line decoded as UTF-8 (strict): a line that is not UTF-8 kills the client's thread
import socket, sys, threading

def serve(conn):
    with conn:
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode()  # BUG: UnicodeDecodeError on bytes that are not UTF-8
                conn.sendall(("Received: " + text + "\n").encode())

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
