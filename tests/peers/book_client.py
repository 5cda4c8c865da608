#!/usr/bin/env python3
"""An upper-case client in the style of the client of the book this lab comes
from (Foundations of Python Network Programming, chapter 3): it shows its
progress on one terminal line that it rewrites with carriage returns, so what it
prints, read as plain text, holds every count in turn ("\\r  42 bytes received
\\r  64 bytes received"). It sends everything before it reads, as that book's
client does. Written afresh for tcplab's tests; standard library only.

    book_client.py HOST PORT BYTES
"""
import socket
import sys

PHRASE = b"hello foobar bye"


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    count = -(-count // 16) * 16
    print("Sending", count, "bytes, 16 at a time")
    conn = socket.create_connection((host, port))
    done = 0
    while done < count:
        conn.sendall(PHRASE)
        done += 16
        sys.stdout.write("\r  %d bytes sent " % done)
        sys.stdout.flush()
    print()
    conn.shutdown(socket.SHUT_WR)
    print("Reading everything the server sends back")
    got = 0
    while True:
        chunk = conn.recv(42)
        if not chunk:
            break
        if got == 0:
            print("  It begins", repr(chunk))
        got += len(chunk)
        sys.stdout.write("\r  %d bytes received " % got)
        sys.stdout.flush()
    print()
    conn.close()


if __name__ == "__main__":
    main()
