"""Peer "python asyncio": CSV -> NDJSON the way an asyncio service often does
it: aiofiles, one line at a time, the csv module on each line, json.dumps,
an awaited write per record. (Correct for this input: no quoted field holds a
line break.)

usage: python3 csv_aiofiles.py IN.csv OUT.jsonl
"""
import asyncio
import csv
import json
import sys

import aiofiles


async def convert(src, dst):
    async with aiofiles.open(src, mode="r", encoding="utf-8", newline="") as f:
        async with aiofiles.open(dst, mode="w", encoding="utf-8") as out:
            header = next(csv.reader([await f.readline()]))
            async for line in f:
                row = next(csv.reader([line]))
                await out.write(json.dumps(dict(zip(header, row))) + "\n")


def main():
    asyncio.run(convert(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
