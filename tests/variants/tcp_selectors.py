# lab: 01-tcp-echo
# variant: one selectors event loop, non-blocking sockets, a queue of unsent bytes per client
import selectors, socket, sys

sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
state = {}  # socket -> [bytes received, not yet a line; bytes owed, not yet sent]


def close(s):
    sel.unregister(s)
    del state[s]
    s.close()


while True:
    for key, events in sel.select():
        s = key.fileobj
        if s is srv:
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            c.setblocking(False)
            state[c] = [b"", b""]
            sel.register(c, selectors.EVENT_READ)
            continue
        st = state[s]
        if events & selectors.EVENT_WRITE:
            try:
                n = s.send(st[1])  # takes what fits; the rest stays owed
            except BlockingIOError:
                n = 0
            except OSError:
                close(s)
                continue
            st[1] = st[1][n:]
        if events & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                close(s)
                continue
            if not data:
                close(s)
                continue
            st[0] += data
            *lines, st[0] = st[0].split(b"\n")
            st[1] += b"".join(b"Received: " + l + b"\n" for l in lines)
        # Writable interest only while bytes are owed; stop reading while a lot is owed.
        want = selectors.EVENT_WRITE if st[1] else 0
        if len(st[1]) < 1 << 20:
            want |= selectors.EVENT_READ
        sel.modify(s, want)
