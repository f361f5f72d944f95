"""Exercise 02-udp-echo: a UDP echo server.

The contract (what `lab check 02 --lang python` tests): started as
`python3 02-udp-echo.py --port N`, bind UDP 127.0.0.1:N; send every datagram (1 to
65507 bytes) back, unchanged, to the address it came from.

Read the lesson: `lab show 02`. Stuck? `lab hint 02`.
"""
import socket
import sys


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        # TODO: is 512 bytes enough for every datagram the contract allows?
        data, addr = sock.recvfrom(512)
        # TODO: send `data` back to `addr`.


if __name__ == "__main__":
    main()
