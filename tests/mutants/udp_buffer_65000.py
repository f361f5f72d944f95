# lab: 02-udp-echo
# caught-by: size_65507
# mistake: receive buffer just short of the largest datagram
import socket, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
while True:
    data, addr = sock.recvfrom(65000)  # BUG: 65507-byte datagrams are cut
    sock.sendto(data, addr)
