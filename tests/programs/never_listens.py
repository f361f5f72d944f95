# Runs but never opens a socket.
import time

time.sleep(60)
