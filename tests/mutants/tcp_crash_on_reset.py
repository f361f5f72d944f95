# lab: 01-tcp-echo
# caught-by: reset_mid_request
# mistake: ConnectionResetError not handled
import select, socket, sys

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
bufs = {}
while True:
    ready, _, _ = select.select([srv] + list(bufs), [], [])
    for s in ready:
        if s is srv:
            c, _ = srv.accept()
            bufs[c] = b""
            continue
        data = s.recv(65536)  # BUG: raises ConnectionResetError after an RST, ending the server
        if not data:
            del bufs[s]
            s.close()
            continue
        bufs[s] += data
        while b"\n" in bufs[s]:
            line, bufs[s] = bufs[s].split(b"\n", 1)
            s.sendall(b"Received: " + line + b"\n")
