#!/usr/bin/env python3
"""The lab's uppercase client made not to deadlock, for comparison: one sendall per
16-byte message (as tcp_uppercase.py does), with a receiver thread reading back
(recv(42), as the lab does... but 64 KiB here so that the receiver is not the limit).

    lab_uppercase_client.py HOST PORT BYTES      prints: seconds verified_bytes
"""
import socket
import sys
import threading
import time

MESSAGE = b"hello foobar bye"


def main():
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    total = (total + 15) // 16 * 16
    sock = socket.create_connection((host, port))
    expected = MESSAGE.upper()
    result = {}

    def receive():
        got = 0
        pending = b""
        ok = True
        while True:
            data = sock.recv(65536)
            if not data:
                break
            pending += data
            whole = len(pending) // 16 * 16
            if pending[:whole] != expected * (whole // 16):
                ok = False
            pending = pending[whole:]
            got += len(data)
        result["got"] = got
        result["ok"] = ok and got == total

    start = time.perf_counter()
    receiver = threading.Thread(target=receive)
    receiver.start()
    sent = 0
    while sent < total:
        sock.sendall(MESSAGE)
        sent += 16
    sock.shutdown(socket.SHUT_WR)
    receiver.join()
    elapsed = time.perf_counter() - start
    if not result["ok"]:
        sys.exit("verification failed")
    print(f"{elapsed:.6f} {result['got']}")


if __name__ == "__main__":
    main()
