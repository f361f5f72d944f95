"""A correct 05-chat server of another shape than the reference solutions: a reader
thread and a writer thread per client, and a bounded queue between the broadcast and
each writer. The broadcast only offers (put_nowait) under the lock, never sends, so a
client that stops reading fills its own queue and is dropped; its writer's sendall
blocks only itself. tests/grade_chat.rs grades it for full marks.
"""
import queue
import socket
import sys
import threading

QUEUE = 512  # lines waiting for one client before it counts as not reading
lock = threading.Lock()
clients = {}  # socket -> (nickname, queue)


def drop(conn):
    """Removes a client once; its reader then sees EOF and announces the departure."""
    with lock:
        gone = clients.pop(conn, None)
    if gone is not None:
        try:
            conn.shutdown(socket.SHUT_RDWR)  # fails a writer stuck in sendall
        except OSError:
            pass
        try:
            gone[1].put_nowait(None)  # wakes a writer waiting for a line
        except queue.Full:
            pass  # a full queue: its writer is in sendall, which now fails
    return gone


def broadcast(line, sender=None):
    full = []
    with lock:
        for c, (_, q) in clients.items():
            if c is not sender:
                try:
                    q.put_nowait(line)
                except queue.Full:
                    full.append(c)
    for c in full:
        drop(c)


def writer(conn, q):
    while True:
        line = q.get()
        if line is None:
            return
        try:
            conn.sendall(line)  # blocking, but only this client's writer waits
        except OSError:
            drop(conn)
            return


def serve(conn):
    buf, nick = b"", None
    with conn:
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
                line = line.rstrip(b"\r")
                if nick is None:
                    nick = line
                    q = queue.Queue(QUEUE)
                    with lock:
                        clients[conn] = (nick, q)
                    threading.Thread(target=writer, args=(conn, q), daemon=True).start()
                    broadcast(b"* " + nick + b" joined\n", conn)
                else:
                    broadcast(b"<" + nick + b"> " + line + b"\n", conn)
            if len(buf) > 4096:
                buf = b""  # a line too long to keep: bounded memory
        drop(conn)
        if nick is not None:
            broadcast(b"* " + nick + b" left\n")


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
srv.listen(128)
while True:
    try:
        conn, _ = srv.accept()
    except OSError:  # out of descriptors: wait a little instead of spinning
        threading.Event().wait(0.05)
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
