# Ignores SIGTERM, never listens, and leaves a child in its own session (outside the
# process group) that ignores SIGTERM too: only SIGKILL and the sandbox's cgroup or PID
# namespace get rid of both.
import os, signal, time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    time.sleep(60)
    os._exit(0)
time.sleep(60)
