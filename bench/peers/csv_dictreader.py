"""Peer "python csv": CSV -> NDJSON with the standard library, as most people
would write it: csv.DictReader and json.dumps, one row at a time.

usage: python3 csv_dictreader.py IN.csv OUT.jsonl
"""
import csv
import json
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, newline="", encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        for row in csv.DictReader(f):
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
