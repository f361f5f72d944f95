# lab: 01-tcp-echo
# caught-by: slow_reader
# mistake: the count send() returns is ignored
import select, socket, sys

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
srv.setblocking(False)
bufs = {}
while True:
    ready, _, _ = select.select([srv] + list(bufs), [], [])
    for s in ready:
        if s is srv:
            try:
                c, _ = srv.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            bufs[c] = b""
            continue
        try:
            data = s.recv(65536)
        except (BlockingIOError, ConnectionError):
            continue
        if not data:
            del bufs[s]
            s.close()
            continue
        bufs[s] += data
        while b"\n" in bufs[s]:
            line, bufs[s] = bufs[s].split(b"\n", 1)
            try:
                s.send(b"Received: " + line + b"\n")  # BUG: may send only part (or nothing)
            except BlockingIOError:
                pass
