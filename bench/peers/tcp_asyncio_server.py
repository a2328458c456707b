"""Peer "python asyncio server": a TCP server written with
asyncio.start_server that reads lines from every connection and writes one
JSON object per line, {"message": LINE}, like `streamer tcp --format lines`.

usage: python3 tcp_asyncio_server.py --port PORT --limit N --out PATH [--flush]

Exits after N records. --out - writes to stdout. --flush flushes after every
record (used for the latency workload; otherwise a record waits in the
output buffer until it fills).
"""
import argparse
import asyncio
import json
import sys


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--limit", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--flush", action="store_true")
    args = ap.parse_args()

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    done = asyncio.Event()
    count = 0

    async def handle(reader, writer):
        nonlocal count
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                out.write(json.dumps({"message": line.decode("utf-8").rstrip("\r\n")}) + "\n")
                if args.flush:
                    out.flush()
                count += 1
                if count >= args.limit:
                    done.set()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, args.host, args.port, limit=1 << 20, backlog=256)
    print(f"python-server: listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    async with server:
        await done.wait()
    out.flush()
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    asyncio.run(main())
