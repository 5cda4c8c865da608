#!/usr/bin/env python3
"""A misbehaving upper-case echo server for tcplab's request/response tests,
standard library only. It serves each connection on its own thread, forever.

    rr_fixture.py corrupt HOST PORT       every 1000th byte comes back with one bit
                                          flipped (upper-cased otherwise)
    rr_fixture.py swap SIZE HOST PORT     replies in pairs, each pair in the wrong
                                          order: request 2's reply before request 1's

It prints "Listening at ADDR" first, in tcplab's form, so tests can use port 0.
"""
import socket
import sys
import threading


def show(sockname):
    host, port = sockname[0], sockname[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def corrupt(conn):
    seen = 0
    while True:
        data = conn.recv(65536)
        if not data:
            return
        out = bytearray(data.upper())
        for i in range(len(out)):
            if (seen + i) % 1000 == 999:
                out[i] ^= 0x01
        seen += len(out)
        conn.sendall(bytes(out))


def recvall(conn, length):
    data = b""
    while len(data) < length:
        more = conn.recv(length - len(data))
        if not more:
            return None
        data += more
    return data


def swap(conn, size):
    while True:
        first = recvall(conn, size)
        second = recvall(conn, size)
        if first is None or second is None:
            return
        conn.sendall(second.upper() + first.upper())


def serve(handler, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    print("Listening at", show(sock.getsockname()), flush=True)
    while True:
        conn, _ = sock.accept()

        def run(conn=conn):
            with conn:
                try:
                    handler(conn)
                except OSError:
                    pass

        threading.Thread(target=run, daemon=True).start()


def main(argv):
    if argv[1] == "corrupt":
        serve(corrupt, argv[2], int(argv[3]))
    elif argv[1] == "swap":
        size = int(argv[2])
        serve(lambda conn: swap(conn, size), argv[3], int(argv[4]))
    else:
        sys.exit("usage: rr_fixture.py corrupt HOST PORT | swap SIZE HOST PORT")


if __name__ == "__main__":
    main(sys.argv)
