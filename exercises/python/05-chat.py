"""Exercise 05-chat: a chat server.

The contract (what `lab check 05 --lang python` tests): started as
`python3 05-chat.py --port N`, listen on 127.0.0.1:N.
  1. A client's first line is its nickname; the others then get `* NICK joined`.
  2. Every later line TEXT from NICK goes to every OTHER client as `<NICK> TEXT`.
  3. When a client disconnects (EOF or reset), the others get `* NICK left`.
  4. A client that stops reading must not delay the others (you may drop it).
Lines end in b"\n"; send nothing else.

Read the lesson: `lab show 05`. Stuck? `lab hint 05`.
"""
import socket
import sys

clients = []  # the connected sockets (a dict socket -> nickname may serve you better)


def serve(conn):
    # TODO: the first line is the nickname: tell the others `* NICK joined`.
    # TODO: every later line goes to every other client as b"<" + nick + b"> " + line.
    # One recv() may hold half a line or several lines; b"" means the client left:
    # tell the others `* NICK left`. A send to a client that stopped reading must not
    # block everyone else.
    conn.close()


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", port))
    srv.listen()
    while True:
        conn, _ = srv.accept()
        # TODO: serve every client at once (a thread per client, or selectors).
        serve(conn)


if __name__ == "__main__":
    main()
