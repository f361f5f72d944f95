# lab: 05-chat
# caught-by: idle_clients
# mistake: clients idle for 5 s are dropped (a select loop with an idle timeout): a person at nc who pauses is cut off
import selectors
import socket
import sys
import time

CAP = 256 * 1024  # most bytes waiting for one client before it is dropped
MAX_LINE = 4096  # longest line kept; a longer one is cut off (bounded memory)

sel = selectors.DefaultSelector()
clients = {}  # socket -> Client


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.nick = None  # set by the first line
        self.inbuf = b""  # bytes of an unfinished line
        self.outbuf = bytearray()  # bytes the kernel has not taken yet
        self.last = time.monotonic()  # when it last sent anything


def broadcast(line, sender=None):
    """Queue `line` for every client with a nickname but the sender."""
    for c in list(clients.values()):
        if c is not sender and c.nick is not None:
            send(c, line)


def send(c, data):
    c.outbuf += data
    if len(c.outbuf) > CAP:
        leave(c)  # it stopped reading: drop it rather than wait for it
        return
    flush(c)


def flush(c):
    """Send what the kernel takes now; wait for writable for the rest."""
    if c.sock not in clients:
        return
    try:
        n = c.sock.send(c.outbuf)  # non-blocking: may take only part
        del c.outbuf[:n]
    except BlockingIOError:
        pass
    except OSError:  # reset or broken pipe: the client is gone
        leave(c)
        return
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
    sel.modify(c.sock, events)


def leave(c):
    if c.sock not in clients:
        return
    del clients[c.sock]
    sel.unregister(c.sock)
    c.sock.close()
    if c.nick is not None:
        broadcast(b"* " + c.nick + b" left\n")


def on_readable(c):
    c.last = time.monotonic()
    try:
        data = c.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:  # ECONNRESET
        data = b""
    if not data:  # b"" is EOF: the client closed its side
        leave(c)
        return
    c.inbuf += data
    # A stream has no message boundaries: act on every complete line, keep the rest.
    while b"\n" in c.inbuf and c.sock in clients:
        line, c.inbuf = c.inbuf.split(b"\n", 1)
        line = line.rstrip(b"\r")
        if c.nick is None:
            c.nick = line
            broadcast(b"* " + c.nick + b" joined\n", sender=c)
        else:
            broadcast(b"<" + c.nick + b"> " + line + b"\n", sender=c)
    if len(c.inbuf) > MAX_LINE:
        c.inbuf = b""


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ)
    while True:
        # BUG: "idle clients are dropped after 5 s": a person at nc who pauses is gone
        for c in [c for c in clients.values() if time.monotonic() - c.last > 5]:
            leave(c)
        for key, events in sel.select(timeout=0.5):
            if key.fileobj is srv:
                try:
                    sock, _ = srv.accept()
                except OSError:  # out of descriptors (EMFILE) or aborted: keep serving,
                    time.sleep(0.05)  # but do not spin: the listener stays readable
                    continue
                sock.setblocking(False)
                clients[sock] = Client(sock)
                sel.register(sock, selectors.EVENT_READ)
                continue
            c = clients.get(key.fileobj)
            if c is None:
                continue
            if events & selectors.EVENT_WRITE:
                flush(c)
            if events & selectors.EVENT_READ and c.sock in clients:
                on_readable(c)


if __name__ == "__main__":
    main()
