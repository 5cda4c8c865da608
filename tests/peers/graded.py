#!/usr/bin/env python3
"""Servers for `tcplab check`'s tests, as students write them: correct ones, and
ones that each carry one bug of the lab. Standard library only.

    graded.py simple PORT [--bug recv16]   one recv(16), no receive-all loop
    graded.py uppercase PORT [--bug ascii] decodes each chunk as ASCII (the lab's own)
    graded.py simple PORT --bug noreuse    no SO_REUSEADDR: a restart fails in TIME_WAIT

Each serves one client at a time on 127.0.0.1 until killed, and prints
"Listening at 127.0.0.1:PORT" first.
"""
import socket
import sys


def listen(port, bug):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if bug != "noreuse":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    print("Listening at %s:%d" % sock.getsockname(), flush=True)
    return sock


def recvall(sock, length):
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            raise EOFError("only received %d bytes" % len(data))
        data += more
    return data


def simple(conn, bug):
    message = conn.recv(16) if bug == "recv16" else recvall(conn, 16)
    conn.sendall(b"Goodbye for now!")


def uppercase(conn, bug):
    while True:
        data = conn.recv(1024)
        if not data:
            return
        if bug == "ascii":
            # The lab's own server: any byte >= 0x80 raises, and nothing catches it.
            conn.sendall(data.decode("ascii").upper().encode("ascii"))
        else:
            conn.sendall(data.upper())


def main():
    program, port = sys.argv[1], int(sys.argv[2])
    bug = sys.argv[4] if sys.argv[3:4] == ["--bug"] else None
    serve = {"simple": simple, "uppercase": uppercase}[program]
    sock = listen(port, bug)
    while True:
        conn, _ = sock.accept()
        try:
            serve(conn, bug)
        except (EOFError, ConnectionError, socket.timeout):
            pass  # that client's problem: serve the next one
        finally:
            conn.close()


if __name__ == "__main__":
    main()
