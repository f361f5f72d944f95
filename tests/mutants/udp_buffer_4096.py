# lab: 02-udp-echo
# caught-by: size_8000
# mistake: receive buffer of 4096 bytes
import socket, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
while True:
    data, addr = sock.recvfrom(4096)  # BUG: larger datagrams are cut
    sock.sendto(data, addr)
