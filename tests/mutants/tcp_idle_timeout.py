# lab: 01-tcp-echo
# caught-by: idle_client
# mistake: a 5 s socket timeout on each client (sendall, so no byte is lost): a person at nc who pauses 5 s is cut off
import socket
import sys
import threading


def serve(conn):
    conn.settimeout(5)  # BUG: a client quiet for 5 s gets socket.timeout and is dropped
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
