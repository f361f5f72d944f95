# A (bounded) fork bomb: forks as fast as it can, never listens. The pids cgroup or
# RLIMIT_NPROC stops it early; the grader must still give a verdict and leave nothing.
import os, time

for _ in range(400):  # bounded: the test rules forbid unbounded loops
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError:
        time.sleep(0.01)
time.sleep(60)
