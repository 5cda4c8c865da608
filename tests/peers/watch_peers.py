#!/usr/bin/env python3
"""Foreign processes for `tcplab watch`'s tests: connections in the states watch
must explain, made by programs that are not tcplab. Standard library only.

    watch_peers.py reader HOST PORT [--read BYTES]
        accepts one connection, reads BYTES (default 1000), then stops reading
        and keeps the socket open: "receiver not reading"
    watch_peers.py sender HOST PORT
        connects and writes until the kernel takes no more (its send queue full,
        the peer's window zero), then keeps the socket open
    watch_peers.py no-eof-client HOST PORT BYTES
        sends BYTES to an uppercase server, reads BYTES back, and then neither
        half-closes nor closes: "waiting for end of stream"
    watch_peers.py one-at-a-time HOST PORT [--backlog N]
        listens with backlog N (default 1), accepts one connection and never
        accepts again: the accept queue fills, "backlog full"
    watch_peers.py opener HOST PORT COUNT
        opens COUNT connections at once (non-blocking connects), keeps them open
    watch_peers.py hold HOST PORT PAIRS [--stdin]
        listens, and a child process opens PAIRS idle connections to it; both
        hold them (a child and a parent each hold PAIRS sockets, so 10,000 pairs
        stay under a 20,000 open-files limit)

Each takes --seconds S (default 60): how long it keeps its sockets before it
exits (a bound, so a test that dies leaves nothing running for long); `hold
--stdin` also exits when standard input ends. A server prints "Listening at ADDR"
first (PORT 0 picks a free port); every program prints a line when it reaches
the state a test waits for: "connected FROM", "stopped reading after N bytes",
"blocked after N bytes sent", "received N bytes back; not closing",
"accepted FROM; accepting no more", "opened N connections", "holding N pairs".
"""
import argparse
import os
import resource
import select
import socket
import sys
import threading
import time

MESSAGE = b"hello foobar bye"


def say(*words):
    print(*words, flush=True)


def show(name):
    host, port = name[0], name[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host, port, backlog):
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    say("Listening at", show(sock.getsockname()))
    return sock


def connect(host, port):
    sock = socket.create_connection((host, port))
    say("connected FROM", show(sock.getsockname()))
    return sock


def hold(seconds, *keep):
    """Keeps the sockets in `keep` open for `seconds`, then returns."""
    time.sleep(seconds)
    return keep


def reader(args):
    sock = listen(args.host, args.port, 1)
    conn, peer = sock.accept()
    say("connected FROM", show(peer))
    got = 0
    while got < args.read:
        data = conn.recv(min(65536, args.read - got))
        if not data:
            break
        got += len(data)
    say("stopped reading after %d bytes" % got)
    hold(args.seconds, sock, conn)


def sender(args):
    sock = connect(args.host, args.port)
    sock.setblocking(False)
    chunk = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + args.seconds
    blocked = False
    # Write until nothing more is taken for half a second; then keep waiting
    # (still trying, as a blocked sendall would) until the time is up.
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
            continue
        except BlockingIOError:
            pass
        _, writable, _ = select.select([], [sock], [], 0.5)
        if not writable and not blocked:
            blocked = True
            say("blocked after %d bytes sent" % sent)
        if blocked:
            time.sleep(0.5)


def no_eof_client(args):
    total = args.bytes
    sock = connect(args.host, args.port)
    received = [0]

    def receive():
        while received[0] < total:
            data = sock.recv(65536)
            if not data:
                break
            received[0] += len(data)

    # Received as it is sent, so that any size works (no lab deadlock here).
    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    sent = 0
    while sent < total:
        n = min(len(MESSAGE), total - sent)
        sock.sendall(MESSAGE[:n])
        sent += n
    receiver.join(args.seconds)
    say("received %d bytes back; not closing" % received[0])
    # The missing shutdown(SHUT_WR): the server waits for an end of stream
    # that never comes.
    hold(args.seconds, sock)


def one_at_a_time(args):
    sock = listen(args.host, args.port, args.backlog)
    conn, peer = sock.accept()
    say("accepted %s; accepting no more" % show(peer))
    hold(args.seconds, sock, conn)


def opener(args):
    socks = []
    for _ in range(args.count):
        s = socket.socket(family(args.host), socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((args.host, args.port))
        socks.append(s)
    # Connections the listener's queue has no room for stay in SYN_SENT; give
    # the others a moment to complete.
    deadline = time.monotonic() + 2
    established = 0
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.1)
        for s in writable:
            pending.remove(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                established += 1
    say("opened %d connections (%d established)" % (len(socks), established))
    hold(args.seconds, *socks)


def raise_open_files(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        sys.exit("watch_peers.py hold: needs %d open files, the limit is %d" % (wanted, soft))


def hold_pairs(args):
    pairs = args.pairs
    raise_open_files(pairs + 64)
    sock = listen(args.host, args.port, 4096)
    port = sock.getsockname()[1]
    # The child's lifeline: it ends when this process does (its read sees EOF).
    lifeline, keep_alive = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(keep_alive)
        sock.close()
        clients = []
        for _ in range(pairs):
            clients.append(socket.create_connection((args.host, port)))
        os.read(lifeline, 1)
        os._exit(0)
    os.close(lifeline)
    accepted = []
    sock.settimeout(60)
    try:
        while len(accepted) < pairs:
            accepted.append(sock.accept()[0])
    except socket.timeout:
        sys.exit("watch_peers.py hold: only %d of %d connections came" % (len(accepted), pairs))
    say("holding %d pairs" % len(accepted))
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        wait = max(0.0, deadline - time.monotonic())
        if args.stdin:
            ready, _, _ = select.select([sys.stdin], [], [], wait)
            if ready and not os.read(sys.stdin.fileno(), 4096):
                break
        else:
            time.sleep(wait)
    os.close(keep_alive)
    os.waitpid(child, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, run, *positional):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        for arg in positional:
            p.add_argument(arg, type=int)
        p.add_argument("--seconds", type=float, default=60)
        p.set_defaults(run=run)
        return p

    command("reader", reader).add_argument("--read", type=int, default=1000)
    command("sender", sender)
    command("no-eof-client", no_eof_client, "bytes")
    command("one-at-a-time", one_at_a_time).add_argument("--backlog", type=int, default=1)
    command("opener", opener, "count")
    command("hold", hold_pairs, "pairs").add_argument("--stdin", action="store_true")
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
