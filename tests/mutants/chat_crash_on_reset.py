# lab: 05-chat
# caught-by: reset_mid_line
# mistake: ConnectionResetError not handled in a select loop: the whole server dies
import select, socket, sys

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
bufs, nicks = {}, {}

def broadcast(line, sender=None):
    for c in list(nicks):
        if c is not sender:
            try:
                c.sendall(line)
            except OSError:
                pass

while True:
    ready, _, _ = select.select([srv] + list(bufs), [], [])
    for s in ready:
        if s is srv:
            c, _ = srv.accept()
            bufs[c] = b""
            continue
        data = s.recv(65536)  # BUG: raises ConnectionResetError after an RST, ending the server
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
