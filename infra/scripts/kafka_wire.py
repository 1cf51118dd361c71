#!/usr/bin/env python3
"""Just enough of a Kafka client, over the raw wire protocol, for the broker scripts and
their tests (infra/scripts/topic_retention.py, infra/tests/broker/run.sh).

    kafka_wire.py HOST PORT topics                            (names of the topics, one a line)
    kafka_wire.py HOST PORT create-topic NAME [--config KEY=VALUE ...]
    kafka_wire.py HOST PORT alter-topic NAME KEY=VALUE ...    (IncrementalAlterConfigs, SET)
    kafka_wire.py HOST PORT describe-topic NAME               (DescribeConfigs; KEY=VALUE lines)
    kafka_wire.py HOST PORT produce NAME --age-ms AGE [--count N]
                                      (N records stamped AGE ms in the past; prints the first offset)
    kafka_wire.py HOST PORT offsets NAME                      (prints "EARLIEST LATEST" of partition 0)
    kafka_wire.py HOST PORT api-versions                      (prints "KEY MIN MAX" lines)

Topics it creates have one partition. The framing, ApiVersions and Metadata come from
kafka_check.py beside it; the rest (CreateTopics v2, IncrementalAlterConfigs v0,
DescribeConfigs v1, Produce v3 with a v2 record batch and its CRC-32C, ListOffsets v1)
is written out here, so that the scripts need nothing but Python's standard library.
It signs in first when KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are set (kafka_check.py).
Exit status 1 with a message on any error code.

IncrementalAlterConfigs is only ever sent with operation SET (0), the one every
Kafka-protocol broker implements.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_check import (Connection, Unhealthy, api_versions, connect, metadata, metadata_version, string,  # noqa: E402
                         uvarint)

CREATE_TOPICS, INCREMENTAL_ALTER_CONFIGS, DESCRIBE_CONFIGS, PRODUCE, LIST_OFFSETS = 19, 44, 32, 0, 2
TOPIC_RESOURCE = 2
TIMEOUT = 10.0


class KafkaError(Exception):
    pass


def array(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


def check_error(what: str, code: int, message: str | None = None) -> None:
    if code != 0:
        raise KafkaError(f"{what}: error code {code}{f' ({message})' if message else ''}")


# ---------------------------------------------------------------- record batch v2

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(value: int) -> bytes:
    return uvarint((value << 1) ^ (value >> 63))  # zigzag


def record_batch(values: list[bytes], timestamp_ms: int) -> bytes:
    records = []
    for delta, value in enumerate(values):
        body = (struct.pack(">b", 0) + varint(0) + varint(delta)  # attributes, timestamp delta, offset delta
                + varint(-1) + varint(len(value)) + value + varint(0))  # null key, value, no headers
        records.append(varint(len(body)) + body)
    after_crc = (struct.pack(">hiqqqhii", 0, len(values) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(values))
                 + b"".join(records))
    after_length = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


# ---------------------------------------------------------------- requests

def create_topic(conn: Connection, name: str, configs: dict[str, str]) -> None:
    topic = (string(name) + struct.pack(">ih", 1, 1) + array([])
             + array([string(k) + string(v) for k, v in configs.items()]))
    body = conn.request(CREATE_TOPICS, 2, array([topic]) + struct.pack(">ib", int(TIMEOUT * 1000), 0))
    body.int32()  # throttle
    for _ in range(body.array_len()):
        topic_name, code, message = body.string(), body.int16(), body.string()
        check_error(f"CreateTopics {topic_name}", code, message)


def topic_partitions(conn: Connection) -> dict[str, int]:
    """The topics the broker has (Metadata for every topic) and their partition counts,
    those without an error and with at least one partition."""
    _brokers, topics = metadata(conn, metadata_version(api_versions(conn)), all_topics=True)
    return {name: partitions for name, error, partitions in topics if error == 0 and partitions > 0}


def topic_names(conn: Connection) -> set[str]:
    return set(topic_partitions(conn))


SET = 0  # the only IncrementalAlterConfigs operation ever sent (see the module's doc)


def alter_topic(conn: Connection, name: str, configs: dict[str, str]) -> None:
    """IncrementalAlterConfigs v0, SET of each KEY=VALUE; other configs stay as they are."""
    entries = [string(k) + struct.pack(">b", SET) + string(v) for k, v in configs.items()]
    resource = struct.pack(">b", TOPIC_RESOURCE) + string(name) + array(entries)
    body = conn.request(INCREMENTAL_ALTER_CONFIGS, 0, array([resource]) + struct.pack(">b", 0))
    body.int32()
    for _ in range(body.array_len()):
        code, message, _type, resource_name = body.int16(), body.string(), body.int8(), body.string()
        check_error(f"IncrementalAlterConfigs {resource_name}", code, message)


def describe_topic(conn: Connection, name: str) -> dict[str, str | None]:
    # v1: its answer says, for every entry, whether it is a default.
    resource = struct.pack(">b", TOPIC_RESOURCE) + string(name) + struct.pack(">i", -1)  # all configs
    body = conn.request(DESCRIBE_CONFIGS, 1, array([resource]) + struct.pack(">b", 0))  # no synonyms
    body.int32()
    configs: dict[str, str | None] = {}
    for _ in range(body.array_len()):
        code, message, _type, resource_name = body.int16(), body.string(), body.int8(), body.string()
        check_error(f"DescribeConfigs {resource_name}", code, message)
        for _ in range(body.array_len()):
            key, value = body.string(), body.string()
            body.int8(), body.int8(), body.int8()  # read_only, config_source, is_sensitive
            for _ in range(body.array_len()):  # synonyms
                body.string(), body.string(), body.int8()
            configs[key or ""] = value
    return configs


def produce(conn: Connection, name: str, values: list[bytes], timestamp_ms: int) -> int:
    batch = record_batch(values, timestamp_ms)
    partition = struct.pack(">i", 0) + struct.pack(">i", len(batch)) + batch
    topic = string(name) + array([partition])
    body = conn.request(PRODUCE, 3, string(None) + struct.pack(">hi", -1, int(TIMEOUT * 1000)) + array([topic]))
    base = None
    for _ in range(body.array_len()):
        body.string()
        for _ in range(body.array_len()):
            _index, code, base, _append_time = body.int32(), body.int16(), body.int64(), body.int64()
            check_error(f"Produce {name}", code)
    if base is None:
        raise KafkaError(f"Produce {name}: no partition in the response")
    return base


def offsets(conn: Connection, name: str, partition: int = 0) -> tuple[int, int]:
    """ListOffsets v1: the earliest and the latest offset of one partition."""
    found = []
    for timestamp in (-2, -1):  # earliest, latest
        topic = string(name) + array([struct.pack(">iq", partition, timestamp)])
        body = conn.request(LIST_OFFSETS, 1, struct.pack(">i", -1) + array([topic]))
        for _ in range(body.array_len()):
            body.string()
            for _ in range(body.array_len()):
                _index, code, _ts, offset = body.int32(), body.int16(), body.int64(), body.int64()
                check_error(f"ListOffsets {name}", code)
                found.append(offset)
    if len(found) != 2:
        raise KafkaError(f"ListOffsets {name}: expected two answers, got {found}")
    return found[0], found[1]


def key_values(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("topics")
    p = sub.add_parser("create-topic")
    p.add_argument("name")
    p.add_argument("--config", action="append", default=[])
    p = sub.add_parser("alter-topic")
    p.add_argument("name")
    p.add_argument("configs", nargs="+")
    p = sub.add_parser("describe-topic")
    p.add_argument("name")
    p = sub.add_parser("produce")
    p.add_argument("name")
    p.add_argument("--age-ms", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p = sub.add_parser("offsets")
    p.add_argument("name")
    sub.add_parser("api-versions")
    args = parser.parse_args()

    conn = connect(args.host, args.port, TIMEOUT)
    try:
        if args.command == "topics":
            print(*sorted(topic_names(conn)), sep="\n")
        elif args.command == "create-topic":
            create_topic(conn, args.name, key_values(args.config))
        elif args.command == "alter-topic":
            alter_topic(conn, args.name, key_values(args.configs))
        elif args.command == "describe-topic":
            for key, value in sorted(describe_topic(conn, args.name).items()):
                print(f"{key}={value}")
        elif args.command == "produce":
            now = int(time.time() * 1000)
            values = [f"record {i} of age {args.age_ms} ms".encode() for i in range(args.count)]
            print(produce(conn, args.name, values, now - args.age_ms))
        elif args.command == "offsets":
            print(*offsets(conn, args.name))
        elif args.command == "api-versions":
            for key, (low, high) in sorted(api_versions(conn).items()):
                print(key, low, high)
    except (KafkaError, Unhealthy) as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
