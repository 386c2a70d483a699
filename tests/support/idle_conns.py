"""Idle loopback TCP connections held by this process, for the owner and change-only tests.

    python3 idle_conns.py N [HELLO_FILE]

Opens a listener on 127.0.0.1 and N connections to it, prints one JSON line
{"pid": ..., "listen": PORT, "conns": [[CLIENT_PORT, SERVER_PORT], ...]} (and writes it to
HELLO_FILE, whole, if given), then obeys stdin lines: "send I" (16 bytes each way on connection
I; answers "send I"), "reset I" (both ends of connection I closed with SO_LINGER 0: an RST, no
time-wait; answers "reset I"), "quit". At the end of stdin it keeps its sockets until killed.
"""
import json
import os
import socket
import struct
import sys
import time

n = int(sys.argv[1])
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(n + 1)
port = listener.getsockname()[1]
pairs = []
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = listener.accept()
    pairs.append((c, s))
hello = json.dumps({
    "pid": os.getpid(),
    "listen": port,
    "conns": [[c.getsockname()[1], s.getsockname()[1]] for c, s in pairs],
})
print(hello, flush=True)
if len(sys.argv) > 2:
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(hello)
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
linger = struct.pack("ii", 1, 0)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "quit":
        break
    i = int(words[1])
    c, s = pairs[i]
    if words[0] == "send":
        c.sendall(b"x" * 16)
        s.recv(16)
        s.sendall(b"y" * 16)
        c.recv(16)
    elif words[0] == "reset":
        for sock in (c, s):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            sock.close()
    print(words[0], i, flush=True)
else:
    while True:
        time.sleep(3600)
