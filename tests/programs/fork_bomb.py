# A (bounded) fork bomb: forks as fast as it can, never listens. The pids cgroup or
# RLIMIT_NPROC stops it early; the grader must still give a verdict and leave nothing.
# It says how many forks the sandbox let through, so the test can check the cap bit.
import os, sys, time

forked = refused = 0
for _ in range(400):  # bounded: the test rules forbid unbounded loops
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forked += 1
    except OSError:
        refused += 1
        time.sleep(0.01)
print(f"fork bomb: {forked} forked, {refused} refused", file=sys.stderr, flush=True)
time.sleep(60)
