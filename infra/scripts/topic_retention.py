#!/usr/bin/env python3
"""Gives the platform's existing topics their retention policy, on any Kafka broker.

    topic_retention.py HOST PORT [--timeout SECONDS]

The services create their topics with cleanup.policy=delete and retention.ms
(shared/eventing/src/kafka/admin.rs). Topics created before that (by hand, or by older
code) keep whatever they had; a broker that does not offer the legacy AlterConfigs the
services' own repair uses would leave them so. This sets, on each of
the platform's topics that exists (user.created, user.deleted, order.created,
order.cancelled, payment.completed, payment.refunded and each one's `<topic>.dlq`, all
behind KAFKA_TOPIC_PREFIX):

    cleanup.policy=delete
    retention.ms=$KAFKA_RETENTION_MS       (3600000, 1 h)     on the event topics
    retention.ms=$KAFKA_DLQ_RETENTION_MS   (604800000, 7 days) on the dead-letter topics

the same variables and defaults as the services (shared/eventing/src/configuration.rs). It reads
each topic's configuration first (DescribeConfigs v1) and alters only what differs
(IncrementalAlterConfigs v0, operation SET only), so a second run changes nothing. A cleanup.policy that already
contains `delete` (such as "compact,delete") is kept, as the services judge it.
Topics that do not exist are left to the services, which create them with the policy.
Other topics are never touched.

Prints one line per platform topic (changed, already set, or absent; with --changes-only
just the changes), then a summary line. Exit status 0
when every existing topic has the policy, 1 when the broker refused or did not answer
(the message says which), 2 for a bad setting. Python 3 standard library only; the wire
protocol is kafka_wire.py's and kafka_check.py's, beside this file.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_check import Connection, Unhealthy, connect  # noqa: E402
from kafka_wire import KafkaError, alter_topic, describe_topic, topic_names  # noqa: E402

# shared/contracts/src/events.rs ALL_TOPICS; dead-letter topics are `<topic>.dlq` (dead_letter_topic).
BASE_TOPICS = ("user.created", "user.deleted", "order.created", "order.cancelled", "payment.completed",
               "payment.refunded")
DEFAULT_RETENTION_MS = 3_600_000
DEFAULT_DLQ_RETENTION_MS = 7 * 24 * 3_600_000


def millis(name: str, default: int) -> str:
    """A setting in milliseconds, as the services read it (a non-negative integer)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return str(default)
    if not raw.isdigit():
        raise SystemExit(f"{name}={raw!r}: expected a number of milliseconds")
    return str(int(raw))


def wanted() -> dict[str, dict[str, str]]:
    """Each platform topic's full name and the configuration it should have."""
    prefix = os.environ.get("KAFKA_TOPIC_PREFIX", "")
    retention = millis("KAFKA_RETENTION_MS", DEFAULT_RETENTION_MS)
    dlq_retention = millis("KAFKA_DLQ_RETENTION_MS", DEFAULT_DLQ_RETENTION_MS)
    topics = {}
    for base in BASE_TOPICS:
        topic = f"{prefix}{base}"
        topics[topic] = {"cleanup.policy": "delete", "retention.ms": retention}
        topics[f"{topic}.dlq"] = {"cleanup.policy": "delete", "retention.ms": dlq_retention}
    return topics


def differences(current: dict[str, str | None], target: dict[str, str]) -> dict[str, str]:
    """The settings to SET: a policy without `delete`, a retention other than the target."""
    changes = {}
    policy = current.get("cleanup.policy") or ""
    if "delete" not in policy.split(","):
        changes["cleanup.policy"] = target["cleanup.policy"]
    if current.get("retention.ms") != target["retention.ms"]:
        changes["retention.ms"] = target["retention.ms"]
    return changes


def apply(conn: Connection, topics: dict[str, dict[str, str]]) -> list[str]:
    """Brings every existing topic in line; returns the lines to print."""
    present = topic_names(conn)
    lines = []
    for topic, target in topics.items():
        if topic not in present:
            lines.append(f"{topic}: absent (the services create it with the policy)")
            continue
        current = describe_topic(conn, topic)
        changes = differences(current, target)
        if not changes:
            lines.append(f"{topic}: unchanged (cleanup.policy={current.get('cleanup.policy')}, "
                         f"retention.ms={current.get('retention.ms')})")
            continue
        alter_topic(conn, topic, changes)
        after = describe_topic(conn, topic)
        if differences(after, target):
            raise KafkaError(f"{topic}: the broker accepted the change but still describes "
                             f"cleanup.policy={after.get('cleanup.policy')}, retention.ms={after.get('retention.ms')}")
        described = ", ".join(f"{key} {current.get(key) or '(unset)'} -> {value}" for key, value in changes.items())
        lines.append(f"{topic}: set {described}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for the whole exchange, connect included (default 30)")
    parser.add_argument("--changes-only", action="store_true",
                        help="print only the topics changed, and the summary")
    args = parser.parse_args()
    try:
        topics = wanted()
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    where = f"{args.host}:{args.port}"
    try:
        conn = connect(args.host, args.port, args.timeout)
    except (OSError, Unhealthy) as err:
        print(f"topic retention: cannot connect to {where}: {err}", file=sys.stderr)
        return 1
    try:
        lines = apply(conn, topics)
    except (KafkaError, Unhealthy) as err:
        print(f"topic retention on {where}: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # socket.timeout included
        print(f"topic retention on {where}: no answer within {args.timeout:g} s ({err or type(err).__name__})",
              file=sys.stderr)
        return 1
    finally:
        conn.close()
    changed = [line for line in lines if ": set " in line]
    absent = [line for line in lines if ": absent " in line]
    for line in changed if args.changes_only else lines:
        print(line)
    print(f"Retention policy on {where}: {len(changed)} topics changed, "
          f"{len(lines) - len(changed) - len(absent)} already set, {len(absent)} absent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
