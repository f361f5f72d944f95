"""Exercise 07-serial-stream: the Pi's forwarder, serial samples to TCP clients.

The contract (what `lab check 07 --lang python` tests): started as
`python3 07-serial-stream.py --serial PATH --port N --buffer K`, read one-byte samples
from the serial device at PATH and listen on 127.0.0.1:N. Every connected client gets
every sample read after it connected, unchanged and in order, K samples per send. Serve
several clients at once; a client that leaves or stops reading must not stop the others;
wait for data without spinning the CPU.

pyserial is not needed: the device is a file. os.open(PATH, os.O_RDONLY) and os.read(fd,
4096) return as soon as at least one byte is there.

Read the lesson: `lab show 07`. Stuck? `lab hint 07`.
"""
import os
import socket
import sys


def arg(name):
    return sys.argv[sys.argv.index(name) + 1]


def main():
    path, port, k = arg("--serial"), int(arg("--port")), int(arg("--buffer"))
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", port))
    srv.listen()
    conn, _ = srv.accept()
    # TODO: serve every client, not just the first: accept in one thread (or select),
    # read the device in another, and keep a list of clients, each with its own buffer.
    while True:
        data = os.read(fd, 4096)
        # TODO: collect samples until the buffer holds k of them, then send exactly k
        # (sendall), keeping the rest for the next buffer.
        conn.sendall(str(list(data)).encode())


if __name__ == "__main__":
    main()
