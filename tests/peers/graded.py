#!/usr/bin/env python3
"""Programs for `tcplab check`'s tests, as students write them: correct ones, and
ones that each carry one bug of the lab. Standard library only.

Servers (one client at a time on 127.0.0.1 until killed; they print
"Listening at 127.0.0.1:PORT" first, then each connection's names):

    graded.py simple PORT [--bug recv16]    one recv(16), no receive-all loop
    graded.py simple PORT --bug noreuse     no SO_REUSEADDR: a restart fails in TIME_WAIT
    graded.py simple PORT --bug nonames     prints neither its address nor its peers
    graded.py uppercase PORT [--bug ascii]  decodes each chunk as ASCII (the lab's own)
    graded.py lines PORT [--bug recv]       prints each recv() as if it were a line
    graded.py lines PORT --bug upper        reads lines right, prints them upper-cased
    graded.py simple PORT --bug flood       after its reply, keeps sending for ever
    graded.py SERVICE PORT --bug v6only     listens on [::1] only, not 127.0.0.1
    graded.py SERVICE PORT --bug noreuse    (any service) no SO_REUSEADDR
    graded.py simple PORT --bug noclose     answers, then never closes the connection
    graded.py simple PORT --bug hangsecond  answers its first client only; hangs on the rest
    graded.py simple PORT --bug escapes     prints terminal escape sequences, not its names
    graded.py uppercase PORT --bug dropbyte loses the byte at offset 100,000 of a connection

Another program on the port (not a student's: what tcplab must never grade):

    graded.py hold PORT [MARKER]
        leaves in a session of its own (its own process group), listens on
        127.0.0.1:PORT and lets the first process exit: the listener serves the
        simple exchange correctly, silently, for 30 s

Clients (of 127.0.0.1 PORT):

    graded.py simple-client PORT [--bug recv16|noeof]
        recv16: one recv(16), no loop; noeof: a loop that never checks for b''
    graded.py uppercase-client PORT BYTES [--bug nohalfclose|silent]
        sends from a thread while it reads (no deadlock); nohalfclose: never
        calls shutdown(SHUT_WR); silent: prints nothing
    graded.py simple-client PORT --bug extra|silent
        extra: sends b'Hello world!!!!!EXTRA'; silent: right, but prints nothing
    graded.py lines-client PORT [--bug dropempty]
        sends its standard input, then closes; dropempty: leaves out empty lines
"""
import os
import signal
import socket
import sys
import threading
import time

served = 0


def listen(port, bug):
    v6 = bug == "v6only"
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    if bug != "noreuse":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::1" if v6 else "127.0.0.1", port))
    sock.listen(16)
    if bug == "escapes":
        print("\x1b]0;pwned\x07\x1b[2J\x1b[Hall good here", flush=True)
    print("Listening at %s:%d" % sock.getsockname()[:2], flush=True)
    return sock


def recvall(sock, length):
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            raise EOFError("was supposed to receive %d bytes but only received %d bytes"
                           % (length, len(data)))
        data += more
    return data


def simple(conn, bug):
    global served
    served += 1
    message = conn.recv(16) if bug == "recv16" else recvall(conn, 16)
    print("The client said", repr(message))
    if bug == "hangsecond" and served > 1:
        time.sleep(3600)
    conn.sendall(b"Goodbye for now!")
    while bug == "flood":
        conn.sendall(b"more" * 4096)
    if bug == "noclose":
        time.sleep(3600)


def uppercase(conn, bug):
    seen = 0
    while True:
        data = conn.recv(1024)
        if not data:
            return
        if bug == "dropbyte" and seen <= 100000 < seen + len(data):
            at = 100000 - seen
            seen += len(data)
            data = data[:at] + data[at + 1:]
        else:
            seen += len(data)
        if bug == "ascii":
            # The lab's own server: any byte >= 0x80 raises, and nothing catches it.
            conn.sendall(data.decode("ascii").upper().encode("ascii"))
        else:
            conn.sendall(data.upper())


def lines(conn, bug):
    if bug == "recv":
        # Each recv() taken for a line: wrong when lines come together or in pieces.
        while True:
            data = conn.recv(1024)
            if not data:
                return
            print(data)
    elif bug == "upper":
        # Each line read right, printed wrong: upper-cased.
        for line in conn.makefile("rb"):
            print(line.upper())
    else:
        for line in conn.makefile("rb"):
            print(line)


def hold(port):
    # The child leaves the program's process group *before* it listens, and the
    # parent exits once it does: the listener is never held by the program's group,
    # not even for an instant, so a check must never grade it.
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        os.read(ready_r, 1)
        os._exit(0)
    os.close(ready_r)
    os.setsid()
    sock = listen(port, None)
    os.write(ready_w, b"!")
    os.close(ready_w)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.alarm(30)
    while True:
        conn, _ = sock.accept()
        try:
            simple(conn, None)
        except (EOFError, ConnectionError):
            pass
        finally:
            conn.close()


def simple_client(port, bug):
    sock = socket.create_connection(("127.0.0.1", port))
    print("Client has been assigned socket name", sock.getsockname())
    sock.sendall(b"Hello world!!!!!EXTRA" if bug == "extra" else b"Hello world!!!!!")
    if bug == "recv16":
        reply = sock.recv(16)
    elif bug == "noeof":
        reply = b""
        while len(reply) < 16:
            reply += sock.recv(16 - len(reply))  # b'' for ever once the server closed
    else:
        reply = recvall(sock, 16)
    if bug != "silent":
        print("The server said", repr(reply))
    sock.close()


def uppercase_client(port, bytecount, bug):
    bytecount = (bytecount + 15) // 16 * 16
    sock = socket.create_connection(("127.0.0.1", port))

    def send():
        block = b"hello foobar bye" * 4096
        left = bytecount
        while left:
            n = min(left, len(block))
            sock.sendall(block[:n])
            left -= n
        print(bytecount, "bytes sent", flush=True)
        if bug != "nohalfclose":
            sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = 0
    while True:
        data = sock.recv(65536)
        if not data:
            break
        received += len(data)
    sender.join()
    if bug != "silent":
        print(received, "bytes received")
    sock.close()


def lines_client(port, bug):
    sock = socket.create_connection(("127.0.0.1", port))
    for line in sys.stdin.buffer:
        if bug == "dropempty" and line.strip() == b"":
            continue
        sock.sendall(line)
    sock.close()


def main():
    program, port = sys.argv[1], int(sys.argv[2])
    rest = sys.argv[3:]
    bug = rest[rest.index("--bug") + 1] if "--bug" in rest else None
    if program == "hold":
        return hold(port)
    if program == "simple-client":
        return simple_client(port, bug)
    if program == "uppercase-client":
        return uppercase_client(port, int(rest[0]), bug)
    if program == "lines-client":
        return lines_client(port, bug)
    serve = {"simple": simple, "uppercase": uppercase, "lines": lines}[program]
    sock = listen(port, bug)
    while True:
        conn, peer = sock.accept()
        if bug not in ("nonames", "escapes"):
            print("We have accepted a connection from", peer)
            print("  Socket name:", conn.getsockname())
            print("  Socket peer:", conn.getpeername())
        try:
            serve(conn, bug)
        except (EOFError, ConnectionError, socket.timeout):
            pass  # that client's problem: serve the next one
        finally:
            conn.close()


if __name__ == "__main__":
    main()
