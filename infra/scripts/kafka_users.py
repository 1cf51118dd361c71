#!/usr/bin/env python3
"""The platform's principals on the local broker: their SCRAM credentials.

    kafka_users.py HOST PORT upsert-users [--mechanism SCRAM-SHA-512] < NAME=PASSWORD lines

`upsert-users` sets each principal's SCRAM credentials (AlterUserScramCredentials v0)
on a broker that does not yet require authentication: `broker.sh` runs it on a private
port, on the broker's store, before it starts the broker with `--authentication`. The
passwords come on stdin, never on a command line (where any local user could read them
in the process list).

Signing in (SCRAM) is kafka_check.py's. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_check import MECHANISMS, Connection, Unhealthy, uvarint  # noqa: E402

ALTER_USER_SCRAM_CREDENTIALS = 51
ITERATIONS = 8192


def _compact(value: bytes) -> bytes:
    return uvarint(len(value) + 1) + value


def upsert_users(conn: Connection, users: list[tuple[str, str]], mechanism: str) -> None:
    """AlterUserScramCredentials v0 (a flexible version): each user's salted password."""
    code, digest = MECHANISMS[mechanism]
    upsertions = b""
    for name, password in users:
        salt = secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), salt, ITERATIONS)
        upsertions += (_compact(name.encode()) + struct.pack(">bi", code, ITERATIONS)
                       + _compact(salt) + _compact(salted) + b"\0")
    no_deletions = uvarint(1)  # an empty compact array
    request = no_deletions + uvarint(len(users) + 1) + upsertions + b"\0"
    body = conn.request(ALTER_USER_SCRAM_CREDENTIALS, 0, request, flexible=True)
    body.int32()  # throttle_time_ms
    failures = []
    for _ in range(body.compact_len()):
        user, error, message = body.compact_string(), body.int16(), body.compact_string()
        body.skip_tags()
        if error != 0:
            failures.append(f"{user}: error code {error}{f' ({message})' if message else ''}")
    if failures:
        raise Unhealthy("AlterUserScramCredentials refused " + "; ".join(failures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("command", choices=["upsert-users"])
    parser.add_argument("--mechanism", default="SCRAM-SHA-512", choices=sorted(MECHANISMS))
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    users = []
    for line in sys.stdin.read().splitlines():
        name, _, password = line.partition("=")
        if not name or not password:
            print("error: each line of stdin is NAME=PASSWORD", file=sys.stderr)
            return 2
        users.append((name.strip(), password))
    conn = Connection(args.host, args.port, args.timeout)
    try:
        upsert_users(conn, users, args.mechanism)
    except (Unhealthy, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"SCRAM credentials ({args.mechanism}) set for {', '.join(name for name, _ in users)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
