"""Peer "kafka-python producer": a producer as usually written with
kafka-python: send() every line of a file as one message (no key), then
flush(). acks="all", as librdkafka's default (kcat, streamer). Every
delivery is confirmed: a callback counts each acknowledged message, an
errback the failed ones; the script fails unless all COUNT were acknowledged.

usage: python3 kafka_python_producer.py --brokers HOST:PORT --topic T --file PATH --count N
"""
import argparse
import sys

from kafka import KafkaProducer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()

    producer = KafkaProducer(bootstrap_servers=args.brokers, acks="all")
    acked = [0]
    failed = []

    def ok(_metadata):
        acked[0] += 1

    def fail(error):
        if len(failed) < 5:
            failed.append(str(error))

    with open(args.file, "rb") as f:
        for line in f:
            future = producer.send(args.topic, value=line.rstrip(b"\n"))
            future.add_callback(ok)
            future.add_errback(fail)
    producer.flush()
    producer.close()
    if failed or acked[0] != args.count:
        print(f"kafka-python producer: {acked[0]} of {args.count} acknowledged; "
              f"failures: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
