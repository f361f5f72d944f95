"""Reference solution for 01-tcp-echo: a line echo server, a thread per client.

Run: python3 01-tcp-echo.py --port 7001   then: nc 127.0.0.1 7001
"""
import socket
import sys
import threading


def serve(conn):
    # `with` closes the socket however this function ends: no descriptor leaks.
    with conn:
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:  # reset by the peer: this client is gone
                return
            if not data:  # b"" is EOF: the client closed its side
                return
            buf += data
            # A stream has no message boundaries: answer every complete line, keep the rest.
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    conn.sendall(b"Received: " + line + b"\n")  # sendall: no partial sends
                except OSError:
                    return


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a restarted server bind while old connections sit in TIME_WAIT.
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:  # out of descriptors or an aborted connection: keep serving
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
