#!/usr/bin/env python3
"""An independent peer for tcplab's tests, written from shared/LAB.md with the
standard library only: the lab's simple and uppercase programs, client and server.

    lab.py simple server HOST PORT        (serves one connection, then exits)
    lab.py simple server HOST PORT --forever
                                          (the handout's loop: one connection at a
                                          time, listen backlog 1, until killed)
    lab.py simple client HOST PORT
    lab.py uppercase server HOST PORT     (serves one connection, then exits)
    lab.py uppercase client HOST PORT BYTES
    lab.py lines client HOST PORT         (sends standard input, then closes)

Servers print "Listening at ADDR" first, in tcplab's ADDR form, so tests can
find the port when PORT is 0.
"""
import socket
import sys

GREETING = b"Hello world!!!!!"
FAREWELL = b"Goodbye for now!"
MESSAGE = b"hello foobar bye"


def show(sockname):
    host, port = sockname[0], sockname[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def recvall(sock, length):
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            raise EOFError("was supposed to receive %d bytes but only received %d bytes"
                           % (length, len(data)))
        data += more
    return data


def listen(host, port):
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1)
    print("Listening at", show(sock.getsockname()), flush=True)
    sc, _ = sock.accept()
    print("Socket name:", show(sc.getsockname()))
    print("Socket peer:", show(sc.getpeername()))
    return sock, sc


def simple_server(host, port, forever=False):
    sock, sc = listen(host, port)
    while True:
        message = recvall(sc, 16)
        print("Incoming sixteen-octet message:", repr(message))
        sc.sendall(FAREWELL)
        sc.close()
        if not forever:
            break
        sc, _ = sock.accept()
        print("Socket name:", show(sc.getsockname()))
        print("Socket peer:", show(sc.getpeername()))
    sock.close()


def simple_client(host, port):
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.connect((host, port))
    print("Client has been assigned socket name", show(sock.getsockname()))
    sock.sendall(GREETING)
    reply = recvall(sock, 16)
    print("The server said", repr(reply))
    sock.close()


def uppercase_server(host, port):
    sock, sc = listen(host, port)
    n = 0
    while True:
        data = sc.recv(1024)
        if not data:
            break
        sc.sendall(data.upper())  # bytes.upper() changes ASCII letters only
        n += len(data)
        print("%d bytes already capitalized" % n)
    sc.close()
    sock.close()


def uppercase_client(host, port, bytecount):
    bytecount = (bytecount + 15) // 16 * 16
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.connect((host, port))
    sent = 0
    while sent < bytecount:
        sock.sendall(MESSAGE)
        sent += len(MESSAGE)
    print("%d bytes sent" % sent)
    sock.shutdown(socket.SHUT_WR)
    received = bytearray()
    while True:
        data = sock.recv(42)
        if not data:
            break
        received += data
    print("%d bytes received" % len(received))
    expected = MESSAGE.upper() * (bytecount // 16)
    if received != expected:
        print("MISMATCH", file=sys.stderr)
        sys.exit(1)
    print("verified")
    sock.close()


def lines_client(host, port):
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.connect((host, port))
    f = sock.makefile("wb")
    for line in sys.stdin.buffer:
        f.write(line)
    f.flush()
    f.close()
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(1024):
        pass
    sock.close()


def main():
    program, role, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if (program, role) == ("simple", "server"):
        simple_server(host, port, forever="--forever" in sys.argv[5:])
    elif (program, role) == ("simple", "client"):
        simple_client(host, port)
    elif (program, role) == ("uppercase", "server"):
        uppercase_server(host, port)
    elif (program, role) == ("uppercase", "client"):
        uppercase_client(host, port, int(sys.argv[5]))
    elif (program, role) == ("lines", "client"):
        lines_client(host, port)
    else:
        sys.exit("usage: lab.py simple|uppercase|lines client|server HOST PORT [BYTES]")


if __name__ == "__main__":
    main()
