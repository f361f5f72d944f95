"""Reference solution for 07-serial-stream: the Pi's forwarder, a thread per job.

Run: python3 07-serial-stream.py --serial /dev/ttyACM0 --port 1234 --buffer 16
then: lab run 07 --role client --connect 127.0.0.1:1234
"""
import os
import queue
import socket
import sys
import termios
import threading
import time
import tty

# Samples queued for one client before it skips buffers: 64 KiB is over a minute of
# samples at 896/s, so only a client that stopped reading skips any, and it costs at most
# this much memory.
MAX_QUEUED_BYTES = 64 * 1024


class Client:
    """One connected client: its own buffer (started empty when it connected, so it
    only ever gets samples read after it arrived) and a bounded queue of full buffers
    that its own thread sends."""

    def __init__(self, conn, k):
        self.conn = conn
        self.buf = bytearray()
        self.out = queue.Queue(max(2, MAX_QUEUED_BYTES // k))
        self.gone = False


clients = []
clients_lock = threading.Lock()


def arg(name):
    return sys.argv[sys.argv.index(name) + 1]


def open_device(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    # A real serial port needs raw mode (no line editing, no CR/LF translation) and the
    # Arduino's 115200 baud; a pseudo-terminal ignores the speed.
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        pass  # not a terminal (a plain file or a pipe): read it as it is
    return fd


def read_device(path, k):
    """Reads samples for ever; hands each client a buffer whenever it holds k."""
    fd = open_device(path)
    wait = 0.1
    while True:
        try:
            data = os.read(fd, 4096)  # blocks until at least one byte: no busy loop
        except OSError:
            data = b""  # EIO: the device went away
        if not data:
            # Unplugged: close, and retry with a growing delay, never in a tight loop.
            os.close(fd)
            while True:
                time.sleep(wait)
                wait = min(wait * 2, 2.0)
                try:
                    fd = open_device(path)
                    break
                except OSError:
                    continue
            wait = 0.1
            continue
        with clients_lock:
            for c in clients:
                c.buf += data  # everything the read returned: no byte is dropped here
                while len(c.buf) >= k:
                    try:
                        c.out.put_nowait(bytes(c.buf[:k]))
                    except queue.Full:
                        pass  # this client is far behind: it skips a buffer
                    del c.buf[:k]


def send_loop(c):
    """Sends one client's buffers; a slow client only ever blocks this thread."""
    with c.conn:
        while True:
            data = c.out.get()
            try:
                c.conn.sendall(data)
            except OSError:  # the client left (reset, broken pipe): forget it
                with clients_lock:
                    clients.remove(c)
                return


def main():
    path, port, k = arg("--serial"), int(arg("--port")), max(1, int(arg("--buffer")))
    threading.Thread(target=read_device, args=(path, k), daemon=True).start()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            continue
        # Small buffers must leave at once, not wait for the previous one's ACK (Nagle).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Client(conn, k)
        with clients_lock:
            clients.append(c)
        threading.Thread(target=send_loop, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
