# lab: 02-udp-echo
# caught-by: burst
# mistake: answers one datagram and exits
import socket, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
data, addr = sock.recvfrom(65535)
sock.sendto(data, addr)  # BUG: no loop
