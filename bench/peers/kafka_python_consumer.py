"""Peer "kafka-python": a consumer as usually written with kafka-python: a
consumer group, auto-commit (at-least-once: offsets of what poll() returned
are committed every 5 s and on close), a poll loop until COUNT messages,
one JSON object per message, {"message": PAYLOAD}.

usage: python3 kafka_python_consumer.py --brokers HOST:PORT --topic T --group G --count N --out PATH
"""
import argparse
import json

from kafka import KafkaConsumer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.brokers,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    seen = 0
    with open(args.out, "w", encoding="utf-8") as out:
        while seen < args.count:
            batches = consumer.poll(timeout_ms=1000)
            for records in batches.values():
                for msg in records:
                    out.write(json.dumps({"message": msg.value.decode("utf-8")}) + "\n")
                seen += len(records)
    consumer.commit()
    consumer.close()


if __name__ == "__main__":
    main()
