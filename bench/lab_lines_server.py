#!/usr/bin/env python3
"""The handout's task done the lab's way: makefile() on the connection and readline()
until end of stream, printing each line.

    lab_lines_server.py HOST PORT      prints "Listening at HOST:PORT" first
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
        sc, _ = sock.accept()
        f = sc.makefile("r", encoding="utf-8", errors="replace")
        while True:
            line = f.readline()
            if not line:
                break
            print(line, end="")
        f.close()
        sc.close()


if __name__ == "__main__":
    main()
