# lab: 02-udp-echo
# caught-by: two_senders
# mistake: replies go to the first client ever seen
import socket, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
first = None
while True:
    data, addr = sock.recvfrom(65535)
    first = first or addr  # BUG: every reply goes to the first sender
    sock.sendto(data, first)
