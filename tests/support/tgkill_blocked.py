"""Interrupts a thread that blocks in a system call, as a signal from another process does.

Usage: tgkill_blocked.py PID TID SYSCALL_NR COUNT GIVE_UP_SECONDS

Each time thread TID of process PID is seen blocked in system call SYSCALL_NR
(/proc/PID/task/TID/syscall), it gets SIGUSR1 through tgkill(PID, TID, SIGUSR1), up to COUNT
times; the script gives up once the thread has not blocked there for GIVE_UP_SECONDS. Prints
how many signals it sent.
"""
import ctypes
import platform
import sys
import time

pid, tid, nr = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count, give_up = int(sys.argv[4]), float(sys.argv[5])
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]
SIGUSR1 = 10
libc = ctypes.CDLL(None, use_errno=True)
path = f"/proc/{pid}/task/{tid}/syscall"


def blocked() -> bool:
    try:
        with open(path) as f:
            return f.read().split()[0] == nr
    except (OSError, IndexError):
        return False


sent = 0
last = time.monotonic()
while sent < count and time.monotonic() - last < give_up:
    if blocked():
        time.sleep(0.003)  # still there: asleep in the call, not passing through it
        if blocked():
            if libc.syscall(SYS_TGKILL, pid, tid, SIGUSR1) != 0:
                sys.exit(f"tgkill failed: errno {ctypes.get_errno()}")
            sent += 1
            last = time.monotonic()
            time.sleep(0.003)  # let the thread wake up and leave the call
            continue
    time.sleep(0.0005)
print(sent, flush=True)
