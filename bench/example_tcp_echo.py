"""HARNESS SELF-CHECK, not a sitemail benchmark.

An asyncio echo server (standing in for "sitemail", since sitemail's servers
are asyncio) against a plain blocking-socket echo server with one thread per
connection, both on 127.0.0.1, each in its own process.  One client
connection sends ``messages`` messages of ``size`` bytes and waits for each
echo.  It needs nothing beyond Python, so it shows that the harness, the
interleaving, the memory readings and the report work on a machine; its
numbers say nothing about sitemail.

The servers run with ``python -m bench.example_tcp_echo --serve KIND``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from bench.harness import PROJECT_ROOT, Benchmark, Metric, TrialResult, Workload, peak_rss_kib

_STARTUP_TIMEOUT = 10.0


# --- the two servers (run in child processes) ----------------------------------


def serve_asyncio() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_socket() -> None:
    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    listener = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


# --- the client and one trial ---------------------------------------------------


def _start(kind: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.example_tcp_echo", "--serve", kind],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    # Wait for the port line, but not forever: a child that hangs before
    # listening must fail the trial, not the whole batch.
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(_STARTUP_TIMEOUT):
            _stop(proc)
            raise RuntimeError(f"{kind} echo server did not start in {_STARTUP_TIMEOUT:.0f} s")
    line = proc.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "PORT":
        _stop(proc)
        raise RuntimeError(f"{kind} echo server said {line!r} instead of its port")
    return proc, int(line[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _trial(kind: str, params: Mapping[str, Any]) -> TrialResult:
    messages = int(params["messages"])
    payload = b"x" * int(params["size"])
    proc, port = _start(kind)
    try:
        latencies: list[int] = []
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            began = time.perf_counter()
            for _ in range(messages):
                t0 = time.perf_counter_ns()
                sock.sendall(payload)
                got = 0
                while got < len(payload):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"{kind} echo server closed the connection")
                    got += len(chunk)
                latencies.append(time.perf_counter_ns() - t0)
            elapsed = time.perf_counter() - began
        rss = peak_rss_kib(proc.pid)
    finally:
        _stop(proc)
    latencies.sort()
    return TrialResult(
        metrics={
            "msgs_per_s": messages / elapsed,
            "p50_latency_us": statistics.median(latencies) / 1000,
            "p99_latency_us": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] / 1000,
        },
        peak_rss_kib=rss,
    )


def asyncio_trial(params: Mapping[str, Any]) -> TrialResult:
    return _trial("asyncio", params)


def socket_trial(params: Mapping[str, Any]) -> TrialResult:
    return _trial("socket", params)


BENCHMARK = Benchmark(
    name="example_tcp_echo",
    description="HARNESS SELF-CHECK: asyncio echo vs blocking-socket echo on 127.0.0.1",
    sitemail=Workload(
        "sitemail",
        asyncio_trial,
        version=f"asyncio, Python {platform.python_version()} (stand-in, not sitemail)",
        description="asyncio.start_server echo in a child process",
    ),
    peers=[
        Workload(
            "socket-echo",
            socket_trial,
            version=f"Python {platform.python_version()}",
            description="blocking sockets, one thread per connection, in a child process",
        )
    ],
    parameters={"messages": 5000, "size": 64},
    metrics={
        "msgs_per_s": Metric("msg/s", higher_is_better=True),
        "p50_latency_us": Metric("us", higher_is_better=False),
        "p99_latency_us": Metric("us", higher_is_better=False),
    },
    self_check=True,
)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=["asyncio", "socket"], required=True)
    kind = parser.parse_args().serve
    with contextlib.suppress(KeyboardInterrupt):
        serve_asyncio() if kind == "asyncio" else serve_socket()
