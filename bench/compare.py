#!/usr/bin/env python3
"""Runs tcplab's end-to-end comparisons side by side, several times each, and writes
bench/RESULTS.md with medians and ratios. Called by bench/run (which installs the
peers and builds tcplab); standard library only.
"""
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                   "release", "tcplab")
BENCH = os.path.join(ROOT, "bench")
QUICK = "--quick" in sys.argv
RUNS = 1 if QUICK else 3
GiB = 1 << 30
MiB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_connectable(port, limit=10.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens at 127.0.0.1:{port}")


class Server:
    """A server process; its port from 'Listening at ADDR', or one we chose."""

    def __init__(self, cmd, port=None, stdout_null=False):
        self.cmd = cmd
        if port is not None:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if stdout_null else None,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            self.port = port
            wait_connectable(port)
            return
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        first = self.proc.stdout.readline().decode()
        m = re.match(r"Listening at .*:(\d+)", first)
        if not m:
            self.stop()
            raise RuntimeError(f"{cmd}: first line {first!r}")
        self.port = int(m.group(1))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        while self.proc.stdout.read(1 << 16):
            pass

    def peak_rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except Exception:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def run_json(cmd, timeout=300):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def median(xs):
    return statistics.median(xs)


def tcplab_uppercase(port, size="1G", extra=()):
    r = run_json([BIN, "uppercase", "client", "127.0.0.1", str(port), size, "--json",
                  "--no-progress", *extra])
    assert r["verified"], r
    return r["goodput_bytes_per_sec"]


def iperf3_one_way(size):
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_connectable_iperf(port)
        r = run_json(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size), "-J"])
        return r["end"]["sum_received"]["bytes"] / r["end"]["sum_received"]["seconds"]
    finally:
        srv.wait(timeout=30)


def wait_connectable_iperf(port):
    # A plain connect would be taken as iperf3's one (-1) client: watch the socket table.
    deadline = time.time() + 10
    while time.time() < deadline:
        ss = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if ss.stdout.strip():
            return
        time.sleep(0.02)
    raise RuntimeError("iperf3 did not start")


results = []


def record(name, ours, theirs, unit, peer, target=None, note="", at_most=False):
    """A row: tcplab's figure, the peer's, their ratio (ours ÷ theirs) and whether it
    meets the target (a floor, or with at_most a ceiling: for costs)."""
    ratio = ours / theirs if theirs else float("nan")
    ok = target is not None and (ratio <= target if at_most else ratio >= target)
    met = "" if target is None else ("yes" if ok else "**no**")
    bound = None if target is None else f"{'≤' if at_most else '≥'} {target}"
    results.append((name, ours, theirs, unit, peer, ratio, bound, met, note))
    log(f"  {name}: tcplab {ours:,.1f} {unit} vs {peer} {theirs:,.1f} {unit}: ratio {ratio:.2f}"
        + ("" if target is None else f" (target {bound}: {met})"))


def bench_uppercase():
    size = "256M" if QUICK else "1G"
    nbytes = 256 * MiB if QUICK else GiB
    log(f"1. uppercase {size} round trip")
    srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet"])
    try:
        by_strategy = {}
        for strategy in ["async", "threads", "nonblocking"]:
            by_strategy[strategy] = median(
                [tcplab_uppercase(srv.port, size, ["--strategy", strategy]) for _ in range(RUNS)])
        default = by_strategy["async"]
    finally:
        srv.stop()
    socat_port = free_port()
    socat = Server(["socat", f"TCP-LISTEN:{socat_port},reuseaddr,fork", "SYSTEM:tr a-z A-Z"],
                   port=socat_port)
    try:
        via_socat = median([tcplab_uppercase(socat_port, size) for _ in range(RUNS)])
    finally:
        socat.stop()
    wire = median([iperf3_one_way(nbytes) for _ in range(RUNS)])
    record(f"uppercase {size} round trip, goodput each way", default / MiB, wire / MiB, "MiB/s",
           "iperf3, one stream, one way", 0.8)
    record(f"uppercase {size} round trip, goodput each way", default / MiB, via_socat / MiB,
           "MiB/s", "socat + tr a-z A-Z", 4.0)
    for strategy in ["threads", "nonblocking"]:
        record(f"uppercase {size}, client --strategy {strategy}", by_strategy[strategy] / MiB,
               default / MiB, "MiB/s", "client --strategy async (default)")


def bench_chunk16():
    size = 16 * MiB if QUICK else 64 * MiB
    log(f"2. the lab's 16-byte writes, {size // MiB} MiB")
    srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet"])
    try:
        ours, theirs = [], []
        for _ in range(RUNS):
            ours.append(tcplab_uppercase(srv.port, str(size), ["--chunk", "16"]))
            out = subprocess.run([sys.executable, os.path.join(BENCH, "lab_uppercase_client.py"),
                                  "127.0.0.1", str(srv.port), str(size)],
                                 capture_output=True, text=True, check=True, timeout=600)
            secs, got = out.stdout.split()
            theirs.append(int(got) / float(secs))
    finally:
        srv.stop()
    record(f"--chunk 16, {size // MiB} MiB round trip", median(ours) / MiB, median(theirs) / MiB,
           "MiB/s", "Python lab-style client (sendall per 16 bytes)", 10.0)


def simple_rate(port, seconds):
    r = run_json([BIN, "simple", "client", "127.0.0.1", str(port), "--connections", "64",
                  "--duration", str(seconds), "--json", "--no-progress"])
    if not r["verified"]:
        raise RuntimeError(f"simple load not verified: {r['errors']}")
    return r["exchanges_per_sec"]


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (netperf's service demand)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cost(cmd, port=None, seconds=5):
    """The server's CPU time per simple exchange, in µs, over a fixed load."""
    srv = Server(cmd, port=port, stdout_null=port is not None)
    try:
        before = cpu_seconds(srv.proc.pid)
        r = run_json([BIN, "simple", "client", "127.0.0.1", str(srv.port), "--connections", "64",
                      "--duration", str(seconds), "--json", "--no-progress"])
        used = cpu_seconds(srv.proc.pid) - before
        if not r["verified"]:
            raise RuntimeError(f"simple load not verified: {r['errors']}")
        return used / r["exchanges"] * 1e6
    finally:
        srv.stop()


def bench_server_strategies():
    """The default (async) server against the blocking one, interleaved, five rounds."""
    size = "256M" if QUICK else "1G"
    seconds = 2 if QUICK else 4
    rounds = 1 if QUICK else 5
    log(f"3a. the async server (default) against the blocking one: {size} round trip, "
        f"and server CPU per simple exchange ({rounds} rounds)")
    goodput = {"async": [], "blocking": []}
    cost = {"async": [], "blocking": [], "python": []}
    for _ in range(rounds):
        for strategy in ["async", "blocking"]:
            srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet",
                          "--strategy", strategy])
            try:
                goodput[strategy].append(tcplab_uppercase(srv.port, size))
            finally:
                srv.stop()
            cost[strategy].append(server_cost(
                [BIN, "simple", "server", "127.0.0.1", "0", "--quiet", "--strategy", strategy],
                seconds=seconds))
        port = free_port()
        cost["python"].append(server_cost(
            [sys.executable, os.path.join(BENCH, "lab_simple_server.py"), "127.0.0.1", str(port)],
            port=port, seconds=seconds))
    log(f"  goodput MiB/s: { {k: [round(v / MiB) for v in vs] for k, vs in goodput.items()} }")
    log(f"  µs per exchange: { {k: [round(v, 1) for v in vs] for k, vs in cost.items()} }")
    record(f"uppercase {size} round trip against the async server (default)",
           median(goodput["async"]) / MiB, median(goodput["blocking"]) / MiB, "MiB/s",
           "the same against --strategy blocking", 0.95)
    a, b, py = (median(cost[k]) for k in ["async", "blocking", "python"])
    record("server CPU per simple exchange (utime+stime), async server (default)", a, b, "µs",
           "--strategy blocking", 1.1, at_most=True)
    record("server CPU per simple exchange, Python lab-style server", py, a, "µs",
           "tcplab's async server", 2.0)


def bench_simple():
    seconds = 3 if QUICK else 10
    log(f"3. simple exchanges per second, 64 connections, {seconds} s")
    ours, theirs = [], []
    for _ in range(RUNS):
        srv = Server([BIN, "simple", "server", "127.0.0.1", "0", "--quiet"])
        try:
            ours.append(simple_rate(srv.port, seconds))
        finally:
            srv.stop()
        # Its per-connection prints go to /dev/null, not through a pipe this script
        # would have to drain (which would cost the Python server CPU time).
        port = free_port()
        py = Server([sys.executable, os.path.join(BENCH, "lab_simple_server.py"),
                     "127.0.0.1", str(port)], port=port, stdout_null=True)
        try:
            theirs.append(simple_rate(py.port, seconds))
        finally:
            py.stop()
    record("simple exchanges per second (64 connections)", median(ours), median(theirs),
           "exchanges/s", "Python lab-style server", 2.0)


def bench_lines():
    n = 1_000_000 if QUICK else 10_000_000
    log(f"4. lines per second, {n:,} short lines")
    path = os.path.join("/tmp", f"tcplab-bench-lines-{n}.txt")
    if not os.path.exists(path):
        with open(path, "w") as f:
            for i in range(0, n, 10000):
                f.write("".join(f"line {j:08d}\n" for j in range(i, min(n, i + 10000))))
    ours, theirs = [], []
    for _ in range(RUNS):
        for servers, out in [
            ([BIN, "lines", "server", "127.0.0.1", "{port}", "--quiet"], ours),
            ([sys.executable, os.path.join(BENCH, "lab_lines_server.py"), "127.0.0.1", "{port}"],
             theirs),
        ]:
            port = free_port()
            srv = Server([a.replace("{port}", str(port)) for a in servers], port=port,
                         stdout_null=True)
            try:
                start = time.perf_counter()
                subprocess.run([BIN, "lines", "client", "127.0.0.1", str(port), path],
                               check=True, stdout=subprocess.DEVNULL, timeout=600)
                out.append(n / (time.perf_counter() - start))
            finally:
                srv.stop()
    record(f"lines per second ({n:,} lines, output to /dev/null)", median(ours), median(theirs),
           "lines/s", "Python makefile()/readline server", 10.0)


def bench_many():
    n = 2000 if QUICK else 10000
    log(f"5. {n:,} concurrent 64 KiB uppercase connections")
    per_conn, goodput = [], []
    for _ in range(RUNS):
        srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet"])
        try:
            r = run_json([BIN, "uppercase", "client", "127.0.0.1", str(srv.port), "64K",
                          "--connections", str(n), "--json", "--no-progress"])
            assert r["verified"] and r["failed"] == 0, r
            per_conn.append(srv.peak_rss() / n)
            goodput.append(r["goodput_bytes_per_sec"])
        finally:
            srv.stop()
    pc = median(per_conn)
    results.append((f"{n:,} concurrent 64 KiB connections: server peak RSS per connection",
                    pc / 1024, 64, "KiB", "the budget", (pc / 1024) / 64, None,
                    "yes" if pc <= 64 * 1024 else "**no**",
                    f"aggregate goodput {median(goodput) / MiB:,.0f} MiB/s each way"))
    log(f"  peak RSS per connection {pc / 1024:.1f} KiB; goodput {median(goodput) / MiB:.0f} MiB/s")


def bench_fifty_thousand():
    n, workers, servers = (12000, 2, 2) if QUICK else (50000, 4, 3)
    log(f"5b. {n:,} concurrent 4 KiB uppercase connections: {servers} --reuse-port servers, "
        f"{workers} load workers, 8 source addresses, held 5 s")
    per_conn, client_per_conn, connect_all, goodput = [], [], [], []
    for _ in range(RUNS):
        cmd = lambda port: [BIN, "uppercase", "server", "127.0.0.1", str(port), "--quiet",
                            "--reuse-port", "--max-connections", "19000"]
        first = Server(cmd(0))
        rest = [Server(cmd(first.port), port=first.port, stdout_null=True)
                for _ in range(servers - 1)]
        time.sleep(0.3)
        try:
            r = run_json([BIN, "uppercase", "client", "127.0.0.1", str(first.port), "4K",
                          "--connections", str(n), "--processes", str(workers),
                          "--source", "127.0.0.2-127.0.0.9", "--hold", "5", "--json"])
            assert r["verified"] and r["failed"] == 0 and r["connections"] == n, r
            # Each server held its share at once: peak RSS over all ÷ connections.
            per_conn.append(sum(s.peak_rss() for s in [first] + rest) / n)
            client_per_conn.append(r["peak_memory_bytes"] / n)
            connect_all.append(r["connected_in_seconds"])
            goodput.append(r["goodput_bytes_per_sec"])
        finally:
            for s in [first] + rest:
                s.stop()
    pc = median(per_conn)
    results.append((f"{n:,} concurrent 4 KiB connections over {servers} servers on one port: "
                    "server peak RSS per connection", pc / 1024, 32, "KiB", "the budget",
                    (pc / 1024) / 32, None, "yes" if pc <= 32 * 1024 else "**no**",
                    f"{workers} load workers, 8 sources: all connected in "
                    f"{median(connect_all):.2f} s; load generator {median(client_per_conn) / 1024:.1f} "
                    f"KiB per connection; aggregate goodput {median(goodput) / MiB:,.1f} MiB/s "
                    "each way (every connection starting at once)"))
    log(f"  server {pc / 1024:.1f} KiB per connection; client "
        f"{median(client_per_conn) / 1024:.1f} KiB; connected in {median(connect_all):.2f} s; "
        f"goodput {median(goodput) / MiB:.1f} MiB/s")


def rr_run(port, connections, seconds):
    """One TCP_RR run (64-byte requests): transactions/s and the server's CPU per
    transaction as tcplab measured it (None when it could not find the server)."""
    r = run_json([BIN, "uppercase", "client", "127.0.0.1", str(port), "--request", "64",
                  "--connections", str(connections), "--duration", str(seconds), "--json",
                  "--no-progress"])
    if not r["verified"]:
        raise RuntimeError(f"RR run not verified: {r['errors']}")
    return r["transactions_per_sec"], r["server_cpu_us_per_transaction"]


def rr_servers():
    """The upper-case servers TCP_RR is run against: (name, command, chosen port)."""
    port_py, port_socat = free_port(), free_port()
    return [
        ("tcplab", [BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet"], None),
        ("python", [sys.executable, os.path.join(BENCH, "lab_uppercase_server.py"),
                    "127.0.0.1", str(port_py)], port_py),
        # tr writes through stdio: unbuffered, or a reply would wait for 4 KiB more.
        ("socat", ["socat", f"TCP-LISTEN:{port_socat},reuseaddr,fork",
                   "SYSTEM:stdbuf -o0 tr a-z A-Z"], port_socat),
    ]


def bench_rr():
    """TCP_RR (64-byte request, one connection: the lab-style server serves one at a
    time) against tcplab's async server, the Python lab-style server and socat + tr,
    interleaved; then 16 connections against tcplab and socat (which forks)."""
    seconds = 2 if QUICK else 4
    rounds = 1 if QUICK else 5
    log(f"7. TCP_RR, 64-byte requests, {seconds} s runs, {rounds} rounds")
    tps = {(n, c): [] for n in ["tcplab", "python", "socat"] for c in [1, 16]}
    cpu = {k: [] for k in tps}
    for _ in range(rounds):
        for name, cmd, port in rr_servers():
            srv = Server(cmd, port=port, stdout_null=port is not None)
            try:
                for c in [1, 16] if name != "python" else [1]:
                    t, us = rr_run(srv.port, c, seconds)
                    tps[(name, c)].append(t)
                    if us is not None:
                        cpu[(name, c)].append(us)
            finally:
                srv.stop()
    log(f"  transactions/s: { {f'{n} x{c}': [round(v) for v in vs] for (n, c), vs in tps.items() if vs} }")
    log(f"  server µs/transaction: { {f'{n} x{c}': [round(v, 1) for v in vs] for (n, c), vs in cpu.items() if vs} }")
    med = lambda xs: median(xs) if xs else float("nan")
    for peer, label in [("python", "Python lab-style server (recv(1024), upper, sendall)"),
                        ("socat", "socat + stdbuf -o0 tr a-z A-Z")]:
        record("TCP_RR 64 B, 1 connection: transactions/s, tcplab async server",
               med(tps[("tcplab", 1)]), med(tps[(peer, 1)]), "transactions/s", label)
        record("TCP_RR 64 B, 1 connection: server CPU per transaction, tcplab async server",
               med(cpu[("tcplab", 1)]), med(cpu[(peer, 1)]), "µs", label, at_most=True,
               note="ratio < 1: tcplab's server costs less")
    record("TCP_RR 64 B, 16 connections: transactions/s, tcplab async server",
           med(tps[("tcplab", 16)]), med(tps[("socat", 16)]), "transactions/s",
           "socat + stdbuf -o0 tr a-z A-Z (a process pair per connection)")
    record("TCP_RR 64 B, 16 connections: server CPU per transaction, tcplab async server",
           med(cpu[("tcplab", 16)]), med(cpu[("socat", 16)]), "µs",
           "socat + stdbuf -o0 tr a-z A-Z (a process pair per connection)", at_most=True)


def rr_peer():
    """bench/rr_peer.c built next to tcplab (when missing or older than its source)."""
    src = os.path.join(BENCH, "rr_peer.c")
    out = os.path.join(os.path.dirname(BIN), "rr_peer")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-o", out, src], check=True)
    return out


def pinned(cpu, cmd):
    """`cmd` on one processor (server on 0, client on 1) when the machine has two."""
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu)] + cmd


def sockperf_server():
    port = free_port()
    cmd = pinned(0, ["sockperf", "sr", "--tcp", "-i", "127.0.0.1", "-p", str(port)])
    return Server(cmd, port=port, stdout_null=True)


def sockperf_pp(port, seconds):
    out = subprocess.run(pinned(1, ["sockperf", "pp", "--tcp", "-i", "127.0.0.1", "-p", str(port),
                                    "-m", "64", "--full-rtt", "-t", str(seconds)]),
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=\d+; "
                  r"ReceivedMessages=(\d+)", out)
    if not m:
        raise RuntimeError(f"sockperf pp printed no figures: {out[-500:]!r}")
    return int(m.group(2)) / float(m.group(1))


def bench_rr_sockperf():
    """TCP_RR, 64 B, one connection, server on processor 0 and client on 1, against
    sockperf (issue 19), interleaved: tcplab's client and async server against
    sockperf pp and sr; then one client for both servers (bench/rr_peer.c, a plain
    blocking send/recv loop whose requests sockperf sr answers and the uppercase
    server sends back unchanged), so that only the servers differ. sockperf pp itself
    cannot drive the uppercase server: it takes only replies marked as sockperf's."""
    seconds = 2 if QUICK else 3
    rounds = 1 if QUICK else 7
    log(f"7b. TCP_RR 64 B, 1 connection, against sockperf: {seconds} s runs, {rounds} rounds")
    peer = rr_peer()
    tps = {k: [] for k in ["sockperf", "tcplab", "peer:sockperf", "peer:async", "peer:blocking",
                           "peer:uring", "peer:uring --sqpoll"]}
    cpu = {k: [] for k in ["peer:sockperf", "peer:async", "peer:blocking", "peer:uring",
                           "peer:uring --sqpoll"]}

    def tcplab_server(strategy):
        return Server(pinned(0, [BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet",
                                 "--strategy", *strategy.split()]))

    def with_peer(key, srv):
        try:
            before = cpu_seconds(srv.proc.pid)
            out = subprocess.run(pinned(1, [peer, "127.0.0.1", str(srv.port), str(seconds)]),
                                 capture_output=True, text=True, check=True,
                                 timeout=seconds + 60).stdout
            n = int(out.split()[0])
            tps[key].append(float(out.split()[2]))
            cpu[key].append((cpu_seconds(srv.proc.pid) - before) / n * 1e6)
        finally:
            srv.stop()

    for _ in range(rounds):
        srv = sockperf_server()
        try:
            tps["sockperf"].append(sockperf_pp(srv.port, seconds))
        finally:
            srv.stop()
        srv = tcplab_server("async")
        try:
            r = run_json(pinned(1, [BIN, "uppercase", "client", "127.0.0.1", str(srv.port),
                                    "--request", "64", "--connections", "1", "--duration",
                                    str(seconds), "--json", "--no-progress"]))
            if not r["verified"]:
                raise RuntimeError(f"RR run not verified: {r['errors']}")
            tps["tcplab"].append(r["transactions_per_sec"])
        finally:
            srv.stop()
        with_peer("peer:sockperf", sockperf_server())
        with_peer("peer:async", tcplab_server("async"))
        with_peer("peer:blocking", tcplab_server("blocking"))
        with_peer("peer:uring", tcplab_server("uring"))
        with_peer("peer:uring --sqpoll", tcplab_server("uring --sqpoll"))
    calls = {"peer:sockperf": syscalls_per_transaction(sockperf_server(), peer, seconds)}
    for strategy in ["async", "blocking", "uring", "uring --sqpoll"]:
        calls[f"peer:{strategy}"] = syscalls_per_transaction(tcplab_server(strategy), peer, seconds)
    log(f"  system calls per transaction (perf stat -e raw_syscalls:sys_enter): "
        f"{ {k: round(v, 2) for k, v in calls.items()} }")
    log(f"  transactions/s: { {k: [round(v) for v in vs] for k, vs in tps.items()} }")
    log(f"  server µs/transaction: { {k: [round(v, 1) for v in vs] for k, vs in cpu.items()} }")
    cost = {k: median(v) for k, v in cpu.items()}
    record("TCP_RR 64 B, 1 connection, pinned: tcplab client + async server (default)",
           median(tps["tcplab"]), median(tps["sockperf"]), "transactions/s",
           "sockperf pp + sockperf sr", 1.0)
    for strategy, target in [("async", 1.0), ("blocking", None), ("uring", 1.2),
                             ("uring --sqpoll", 1.2)]:
        record(f"TCP_RR 64 B, 1 connection, pinned, one client for both (bench/rr_peer.c): "
               f"tcplab {strategy} server{' (default)' if strategy == 'async' else ''}",
               median(tps[f"peer:{strategy}"]), median(tps["peer:sockperf"]), "transactions/s",
               "sockperf sr", target,
               note=f"server CPU per transaction {cost[f'peer:{strategy}']:.1f} µs against "
                    f"sockperf sr's {cost['peer:sockperf']:.1f}; system calls per transaction "
                    f"{calls[f'peer:{strategy}']:.2f} against {calls['peer:sockperf']:.2f}")


def syscalls_per_transaction(srv, peer, seconds):
    """The server's system calls per transaction under bench/rr_peer.c, counted by
    `perf stat -e raw_syscalls:sys_enter` attached to it (NaN without perf)."""
    try:
        if not shutil.which("perf"):
            return float("nan")
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p",
                                 str(srv.proc.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        out = subprocess.run(pinned(1, [peer, "127.0.0.1", str(srv.port), str(seconds)]),
                             capture_output=True, text=True, check=True,
                             timeout=seconds + 60).stdout
        perf.send_signal(signal.SIGINT)
        err = perf.communicate(timeout=30)[1]
        m = re.search(r"^(\d+),", err, re.M)
        return int(m.group(1)) / int(out.split()[0]) if m else float("nan")
    finally:
        srv.stop()


def bench_rr_uring():
    """TCP_RR 64 B with 16 connections, the uring server against the async one
    (issue 25), interleaved rounds, server on processor 0 and tcplab's client on 1:
    transactions/s and the server's CPU per transaction."""
    seconds = 2 if QUICK else 3
    rounds = 1 if QUICK else 5
    log(f"7c. TCP_RR 64 B, 16 connections, uring server against async: {seconds} s runs, "
        f"{rounds} rounds")
    tps = {"async": [], "uring": []}
    cpu = {"async": [], "uring": []}
    for _ in range(rounds):
        for strategy in ["async", "uring"]:
            srv = Server(pinned(0, [BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet",
                                    "--strategy", strategy]))
            try:
                before = cpu_seconds(srv.proc.pid)
                r = run_json(pinned(1, [BIN, "uppercase", "client", "127.0.0.1", str(srv.port),
                                        "--request", "64", "--connections", "16", "--duration",
                                        str(seconds), "--json", "--no-progress"]))
                if not r["verified"]:
                    raise RuntimeError(f"RR run not verified: {r['errors']}")
                tps[strategy].append(r["transactions_per_sec"])
                n = r["transactions"]
                cpu[strategy].append((cpu_seconds(srv.proc.pid) - before) / n * 1e6)
            finally:
                srv.stop()
    log(f"  transactions/s: { {k: [round(v) for v in vs] for k, vs in tps.items()} }")
    log(f"  server µs/transaction: { {k: [round(v, 2) for v in vs] for k, vs in cpu.items()} }")
    record("TCP_RR 64 B, 16 connections, pinned: tcplab uring server",
           median(tps["uring"]), median(tps["async"]), "transactions/s",
           "tcplab async server (default)", 1.3)
    record("TCP_RR 64 B, 16 connections, pinned: server CPU per transaction, uring server",
           median(cpu["uring"]), median(cpu["async"]), "µs", "tcplab async server (default)",
           1.0, at_most=True)


def bench_idle():
    """Memory per idle connection (connected, nothing sent), uring against async:
    the server's resident memory with 10,000 idle uppercase connections, less its
    memory before them, divided by 10,000."""
    n = 2000 if QUICK else 10000
    log(f"5c. {n:,} idle uppercase connections: server memory per connection")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per = {"async": [], "uring": []}
    for _ in range(1 if QUICK else 3):
        for strategy in ["async", "uring"]:
            srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet",
                          "--strategy", strategy])
            socks = []
            try:
                time.sleep(0.2)
                before = rss(srv.proc.pid)
                for _ in range(n):
                    socks.append(socket.create_connection(("127.0.0.1", srv.port)))
                time.sleep(1.0)
                per[strategy].append((rss(srv.proc.pid) - before) / n)
            finally:
                for s_ in socks:
                    s_.close()
                srv.stop()
    log(f"  KiB per idle connection: { {k: [round(v / 1024, 1) for v in vs] for k, vs in per.items()} }")
    u, a = median(per["uring"]), median(per["async"])
    results.append((f"{n:,} idle connections: uring server memory per connection (RSS added)",
                    u / 1024, 8, "KiB", "the budget", (u / 1024) / 8, None,
                    "yes" if u <= 8 * 1024 else "**no**",
                    f"the async server: {a / 1024:.1f} KiB per connection"))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_observing():
    """Intervals (every 0.1 s, with TCP_INFO, as JSON lines) against none, on a 1 GiB
    round trip, interleaved: the watchdog samples either way, so the cost should be
    within noise."""
    size = "256M" if QUICK else "1G"
    rounds = 1 if QUICK else 7
    log(f"8. {size} round trip with --interval 0.1 (TCP_INFO, JSON lines) and without, "
        f"{rounds} rounds")
    plain, observed = [], []
    srv = Server([BIN, "uppercase", "server", "127.0.0.1", "0", "--quiet"])
    try:
        for _ in range(rounds):
            plain.append(tcplab_uppercase(srv.port, size))
            out = subprocess.run([BIN, "uppercase", "client", "127.0.0.1", str(srv.port), size,
                                  "--json", "--no-progress", "--interval", "0.1"],
                                 capture_output=True, text=True, timeout=300, check=True)
            lines = [json.loads(line) for line in out.stdout.splitlines()]
            assert lines[-1]["verified"] and lines[0]["tcp_info"] is not None, lines[-1]
            observed.append(lines[-1]["goodput_bytes_per_sec"])
    finally:
        srv.stop()
    log(f"  MiB/s plain {[round(v / MiB) for v in plain]}, observed {[round(v / MiB) for v in observed]}")
    record(f"uppercase {size} round trip with --interval 0.1 (TCP_INFO, JSON lines)",
           median(observed) / MiB, median(plain) / MiB, "MiB/s", "the same without --interval",
           0.95, note=f"spread without: {min(plain) / MiB:,.0f}–{max(plain) / MiB:,.0f} MiB/s")


def bench_criterion():
    log("6. criterion micro-benchmarks")
    out = subprocess.run(["cargo", "bench", "--locked", "--bench", "cores", "--",
                          "--warm-up-time", "1", "--measurement-time", "3"],
                         cwd=ROOT, capture_output=True, text=True)
    found = []
    name = None
    for line in out.stdout.splitlines():
        if line and not line.startswith(" ") and "time:" in line:
            name = line.split("time:")[0].strip()
        elif line and not line.startswith(" ") and not line.startswith("Benchmarking"):
            name = line.strip() or name
        m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+)", line)
        if m and name:
            found.append((name, m.group(1), m.group(2)))
    for name, value, unit in found:
        log(f"  {name}: {value} {unit}")
    return found


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model or platform.machine()}), Linux {platform.release()}"


def write_results(micro, started):
    lines = [
        "# tcplab benchmark results",
        "",
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- command: `bench/run{' --quick' if QUICK else ''}` "
        f"({RUNS} run(s) of each; medians; took {time.time() - started:.0f} s)",
        "",
        "| comparison | tcplab | peer | peer's figure | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, ours, theirs, unit, peer, ratio, target, met, note in results:
        tgt = target or ""
        if unit == "KiB":
            lines.append(f"| {name} | {ours:,.1f} KiB | {peer} | {theirs} KiB | "
                         f"{ratio:.2f} of the budget | ≤ {theirs} KiB | {met} |")
        else:
            lines.append(f"| {name} | {ours:,.1f} {unit} | {peer} | {theirs:,.1f} {unit} | "
                         f"{ratio:.2f} | {tgt} | {met} |")
        lines[-1] += f" {note} |"
    lines += ["", "Micro-benchmarks (criterion, `cargo bench --bench cores`):", ""]
    lines += [f"- {name}: {value} {unit}" for name, value, unit in micro] or ["- (none ran)"]
    notes_path = os.path.join(BENCH, "NOTES.md")
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            lines += ["", f.read().strip()]
    with open(os.path.join(BENCH, "RESULTS.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    started = time.time()
    if not os.path.exists(BIN):
        sys.exit(f"build tcplab first: {BIN} is missing (bench/run does it)")
    benches = [bench_uppercase, bench_chunk16, bench_server_strategies, bench_simple, bench_lines,
               bench_many, bench_fifty_thousand, bench_idle, bench_rr, bench_rr_sockperf,
               bench_rr_uring, bench_observing]
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
    if only:
        # A developer's look at some rows: printed, RESULTS.md left as it is.
        for bench in benches:
            if bench.__name__.removeprefix("bench_") in only:
                bench()
        return
    for bench in benches:
        bench()
    micro = bench_criterion()
    write_results(micro, started)


if __name__ == "__main__":
    main()
