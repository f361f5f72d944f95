# lab: 02-udp-echo
# caught-by: binary_bytes
# mistake: datagrams treated as text (decode, strip, encode)
import socket, sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
while True:
    data, addr = sock.recvfrom(65535)
    text = data.decode("utf-8", errors="replace").strip()  # BUG: changes the bytes
    sock.sendto(text.encode("utf-8"), addr)
