"""Reference solution for 02-udp-echo: every datagram goes back to its sender.

Run: python3 02-udp-echo.py --port 7002   then: nc -u 127.0.0.1 7002
"""
import socket
import sys


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    while True:
        # 65535 holds any UDP datagram (the largest payload over IPv4 is 65507 bytes).
        data, addr = sock.recvfrom(65535)
        # Reply to the address this datagram came from, with the bytes unchanged.
        sock.sendto(data, addr)


if __name__ == "__main__":
    main()
