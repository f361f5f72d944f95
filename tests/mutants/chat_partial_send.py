# lab: 05-chat
# caught-by: slow_reader
# mistake: the count send() returns is ignored on non-blocking sockets
import select, socket, sys

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
srv.setblocking(False)
bufs, nicks = {}, {}

def broadcast(line, sender=None):
    for c in list(nicks):
        if c is not sender:
            try:
                c.send(line)  # BUG: may take only part of the line; the rest is lost
            except BlockingIOError:
                pass  # its buffer is full: skip this line for it
            except OSError:
                pass

while True:
    ready, _, _ = select.select([srv] + list(bufs), [], [])
    for s in ready:
        if s is srv:
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            c.setblocking(False)
            bufs[c] = b""
            continue
        try:
            data = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            nick = nicks.pop(s, None)
            del bufs[s]
            s.close()
            if nick is not None:
                broadcast(b"* " + nick + b" left\n")
            continue
        bufs[s] += data
        while b"\n" in bufs[s]:
            line, bufs[s] = bufs[s].split(b"\n", 1)
            if s not in nicks:
                nicks[s] = line
                broadcast(b"* " + line + b" joined\n", s)
            else:
                broadcast(b"<" + nicks[s] + b"> " + line + b"\n", s)
