#!/usr/bin/env python3
"""Hostile submissions for `tcplab check --sandbox`'s tests: each tries one thing a
sandbox must stop, says on standard error what came of it, then either gives up
(exit status 3: the attempt failed, and the check's verdict quotes why) or, when
the attempt succeeded, serves the upper-case service correctly. Standard library
only; every loop is bounded.

    hostile_submission.py serve PORT            a correct upper-case server
    hostile_submission.py serve-threads PORT    the same, a thread per connection
    hostile_submission.py serve-fork PORT       the same, a process per connection
    hostile_submission.py read PORT PATH        reads PATH (outside its directory)
    hostile_submission.py connect PORT HOSTPORT connects to 127.0.0.1:HOSTPORT
    hostile_submission.py write PORT PATH       writes to PATH (another submission's)
    hostile_submission.py hog PORT              allocates 3 GiB
    hostile_submission.py spin PORT             spins the CPU for 30 s first
    hostile_submission.py forkbomb PORT MARKER  forks until refused (at most 5,000
                                                times, for at most 10 s; children
                                                sleep until then; refused, it
                                                holds them until then too),
                                                MARKER being only there to be
                                                found in ps
"""
import os
import socket
import sys
import threading
import time


def serve(port, threaded=False, forking=False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    print("Listening at %s:%d" % sock.getsockname()[:2], flush=True)
    while True:
        conn, _ = sock.accept()
        if threaded:
            threading.Thread(target=capitalize, args=(conn,), daemon=True).start()
        elif forking:
            if os.fork() == 0:
                sock.close()
                capitalize(conn)
                os._exit(0)
            conn.close()
            reap()
        else:
            capitalize(conn)


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def capitalize(conn):
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data.upper())
    except ConnectionError:
        pass
    finally:
        conn.close()


def attempt(what, action):
    """Runs action(); on failure says so and exits 3."""
    try:
        result = action()
    except (OSError, MemoryError) as e:
        print("hostile %s failed: %s" % (what, e), file=sys.stderr, flush=True)
        sys.exit(3)
    print("hostile %s succeeded: %r" % (what, result), file=sys.stderr, flush=True)


def read(path):
    with open(path) as f:
        return f.read()


def write(path):
    with open(path, "w") as f:
        f.write("overwritten by another submission\n")
    return path


def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"hello from the sandbox\n")
    return port


def forkbomb():
    deadline = time.monotonic() + 10
    children = 0
    for _ in range(5000):
        if time.monotonic() > deadline:
            break
        try:
            pid = os.fork()
        except OSError as e:
            print("hostile forkbomb failed after %d forks: %s" % (children, e),
                  file=sys.stderr, flush=True)
            # Holds its processes until the deadline, as a real bomb would.
            time.sleep(max(0, deadline - time.monotonic()))
            sys.exit(3)
        if pid == 0:
            time.sleep(max(0, deadline - time.monotonic()))
            os._exit(0)
        children += 1
    print("hostile forkbomb succeeded: %d forks" % children, file=sys.stderr, flush=True)


def main():
    what, port, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    if what == "read":
        attempt("read", lambda: read(rest[0]))
    elif what == "write":
        attempt("write", lambda: write(rest[0]))
    elif what == "connect":
        attempt("connect", lambda: connect(int(rest[0])))
    elif what == "hog":
        attempt("hog", lambda: len(bytearray(3 << 30)))
    elif what == "spin":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pass
    elif what == "forkbomb":
        forkbomb()
    serve(port, threaded=what == "serve-threads", forking=what == "serve-fork")


if __name__ == "__main__":
    main()
