#!/usr/bin/env python3
"""W7 and W8 servers on Python's asyncio (and on uvloop with --uvloop): the
reference rows of bench/stream.  They speak the benchmark's server
protocol: print "PORT <n>", serve until standard input closes, then print
one RESULT line with the counters the other columns report.

    asyncio_servers.py w7|w8 [--uvloop]

W8's handler is seed 002's handle_request (readuntil, write, drain), kept
alive for the next request and with the right Content-Length.
"""
import asyncio
import os
import sys
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"Hello, world!")
stats = {"accepted": 0, "closed": 0, "bytes": 0, "requests": 0}


async def echo(reader, writer):
    stats["accepted"] += 1
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            stats["bytes"] += len(data)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()
    stats["closed"] += 1


async def handle_request(reader, writer):
    stats["accepted"] += 1
    try:
        while True:
            data = await reader.readuntil(b"\r\n\r\n")
            stats["bytes"] += len(data)
            stats["requests"] += 1
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
    stats["closed"] += 1


async def main(workload, lib):
    handler = echo if workload == "w7" else handle_request
    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def stdin_readable():
        if not os.read(0, 64) and not done.done():
            done.set_result(None)
    loop.add_reader(0, stdin_readable)
    cpu0 = time.process_time_ns()
    await done
    cpu = time.process_time_ns() - cpu0
    loop.remove_reader(0)
    server.close()
    print(f"RESULT {workload} {lib} accepted={stats['accepted']} closed={stats['closed']} "
          f"bytes={stats['bytes']} requests={stats['requests']} cpu_ns={cpu}", flush=True)


if __name__ == "__main__":
    workload = sys.argv[1]
    lib = "asyncio"
    if "--uvloop" in sys.argv:
        import uvloop
        uvloop.install()
        lib = "uvloop"
    asyncio.run(main(workload, lib))
