# Listens on the port after the one it was given (a hard-coded port, in spirit).
import socket, sys, time

port = int(sys.argv[sys.argv.index("--port") + 1]) + 1
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
time.sleep(60)
