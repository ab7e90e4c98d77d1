"""Benchmark: what one small write to a TCP socket costs the writer, when the reader (another
process) is asleep waiting for it and when it is busy reading.

    .venv/bin/python -m bench.wakeups [--writes 300]

A reply's stream writes each token to the browser as it comes, and reads each from the provider
as it comes: with one reply at a time, every write wakes a sleeping reader (and every read is a
wake-up of this process). A crowd's writes find their readers busy and its reads come several at
a time. This prints the writer's CPU time and wall time per write, with the reader asleep
(writes --gap apart) and busy (writes back to back), so the cost of a lone reply's tokens can be
told from chatter's own work.
"""

import argparse
import os
import resource
import socket
import time


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(sock: socket.socket, writes: int, gap: float) -> tuple[float, float]:
    """Per write: (CPU µs, wall µs not counting the gaps)."""
    spent_cpu, spent_wall = 0.0, 0.0
    for _ in range(writes):
        started, started_cpu = time.perf_counter(), cpu()
        sock.sendall(b"event: delta\ndata: word\nid: 1\n\n")
        spent_wall += time.perf_counter() - started
        spent_cpu += cpu() - started_cpu
        if gap:
            time.sleep(gap)
    return spent_cpu / writes * 1e6, spent_wall / writes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between writes while the reader sleeps")
    args = parser.parse_args()

    listener = socket.create_server(("127.0.0.1", 0))
    reader = os.fork()
    if reader == 0:  # the browser: reads until the writer closes
        with socket.create_connection(listener.getsockname()) as sock:
            while sock.recv(65536):
                pass
        os._exit(0)
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        asleep = measure(sock, args.writes, args.gap)
        busy = measure(sock, args.writes * 50, 0.0)
    finally:
        sock.close()
        os.waitpid(reader, 0)
    print(f"nproc {os.cpu_count()}; {args.writes} writes {args.gap * 1000:g} ms apart, then {args.writes * 50} back to back")
    print("| reader | CPU per write | wall per write |")
    print("| --- | ---: | ---: |")
    print(f"| asleep (a lone reply's token) | {asleep[0]:.1f} µs | {asleep[1]:.1f} µs |")
    print(f"| busy (a crowd's) | {busy[0]:.1f} µs | {busy[1]:.1f} µs |")


if __name__ == "__main__":
    main()
