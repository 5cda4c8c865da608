#!/usr/bin/env python3
"""A server that does what the lab's tcp_simple.py server does: one connection at a
time, receive-all 16 bytes, print, reply 16 bytes, close.

    lab_simple_server.py HOST PORT      prints "Listening at HOST:PORT" first
"""
import socket
import sys


def recvall(sock, length):
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            raise EOFError("was supposed to receive %d bytes but only received %d bytes"
                           % (length, len(data)))
        data += more
    return data


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    print("Listening at %s:%d" % sock.getsockname(), flush=True)
    while True:
        sc, sockname = sock.accept()
        print("We have accepted a connection from", sockname)
        print("  Socket name:", sc.getsockname())
        print("  Socket peer:", sc.getpeername())
        try:
            message = recvall(sc, 16)
            print("  Incoming sixteen-octet message:", repr(message))
            sc.sendall(b"Goodbye for now!")
        except (EOFError, OSError) as e:
            print("  error:", e, file=sys.stderr)
        sc.close()
        print("  Reply sent, socket closed")


if __name__ == "__main__":
    main()
