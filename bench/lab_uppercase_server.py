#!/usr/bin/env python3
"""A server that does what the lab's tcp_uppercase.py server does: one connection at
a time, recv(1024), upper-case the chunk, sendall it back, until end of stream.

    lab_uppercase_server.py HOST PORT      prints "Listening at HOST:PORT" first
"""
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1)
    print("Listening at %s:%d" % sock.getsockname(), flush=True)
    while True:
        sc, sockname = sock.accept()
        while True:
            data = sc.recv(1024)
            if not data:
                break
            # The lab's server decodes as ASCII; the bench only sends letters.
            sc.sendall(data.decode("ascii").upper().encode("ascii"))
        sc.close()


if __name__ == "__main__":
    main()
