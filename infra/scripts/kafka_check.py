#!/usr/bin/env python3
"""Is there a working Kafka broker at HOST:PORT? Asked with real Kafka requests.

    kafka_check.py HOST PORT [--timeout SECONDS] [--quiet]

A TCP connect is not enough: a broker whose storage failed may keep accepting
connections while it fails every request, and so does a stopped
process (the kernel completes the handshake into its backlog). This sends, on one
connection, ApiVersions v0 and then Metadata (v1, or the oldest version the broker offers
up to v8: Kafka 4 dropped v0-v3) with an empty topic list, which brokers answer with
their brokers (some also list their topics, reading their store), and calls
the broker healthy only when both come back well formed, without an error code, and
Metadata names at least one broker.

Exit status:
  0  a healthy Kafka broker answers
  1  something accepts TCP connections but does not answer Kafka requests: wedged,
     stopped, overloaded past the timeout, or not Kafka at all (the message says which
     step failed: a listener that does not even answer ApiVersions is probably foreign)
  2  nothing listens there (connection refused, host or network unreachable, unknown host)

One line on stdout says what was found (not with --quiet). Python 3 standard library
only; the Kafka wire protocol is written out below (size-prefixed frames, request
header v1: api_key, api_version, correlation_id, client_id).
"""

from __future__ import annotations

import argparse
import errno
import socket
import struct
import sys
import time

HEALTHY, NOT_KAFKA, NOTHING = 0, 1, 2
API_VERSIONS, METADATA = 18, 3
CLIENT_ID = b"kafka-check"
MAX_FRAME = 64 * 1024 * 1024


class Unhealthy(Exception):
    """The listener answered, but not as a healthy Kafka broker."""


class Reader:
    """Decodes the big-endian primitives of a response body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Unhealthy(f"malformed response: {len(self.data)} bytes, needed {self.pos + n}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def array_len(self) -> int:
        n = self.int32()
        if n > 1_000_000:
            raise Unhealthy(f"malformed response: an array of {n} elements")
        return max(n, 0)


def string(value: str | bytes | None) -> bytes:
    """A nullable STRING (int16 length, -1 for null)."""
    if value is None:
        return struct.pack(">h", -1)
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">h", len(data)) + data


class Connection:
    """One connection; request() sends a frame and returns the matching response body."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        return left

    def _recv_exactly(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            self.sock.settimeout(self._remaining())
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise Unhealthy("connection closed by the broker" if got == 0 and not chunks
                                else "connection closed in the middle of a response")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def request(self, api_key: int, api_version: int, body: bytes) -> Reader:
        self.correlation += 1
        header = struct.pack(">hhi", api_key, api_version, self.correlation) + string(CLIENT_ID)
        frame = header + body
        self.sock.settimeout(self._remaining())
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._recv_exactly(4))[0]
        if not 4 <= size <= MAX_FRAME:
            raise Unhealthy(f"not a Kafka response (frame size {size})")
        reader = Reader(self._recv_exactly(size))
        correlation = reader.int32()  # response header v0 for both requests
        if correlation != self.correlation:
            raise Unhealthy(f"not a Kafka response (correlation id {correlation}, sent {self.correlation})")
        return reader


def api_versions(conn: Connection) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: error_code, [api_key, min_version, max_version]."""
    body = conn.request(API_VERSIONS, 0, b"")
    error = body.int16()
    if error != 0:
        raise Unhealthy(f"ApiVersions answered error code {error}")
    versions = {}
    for _ in range(body.array_len()):
        key, low, high = body.int16(), body.int16(), body.int16()
        versions[key] = (low, high)
    return versions


def metadata(conn: Connection, version: int, all_topics: bool = False) -> tuple[list[tuple[int, str, int]], list[tuple[str, int, int]]]:
    """Metadata (v1 to v8, the non-flexible ones): brokers and topics, as (name, error
    code, partition count), every field parsed so that a malformed answer is noticed.
    Asks for no topic (v1+: an empty list; some brokers list all anyway) unless `all_topics`
    (a null list: every topic)."""
    request = struct.pack(">i", -1 if all_topics else 0)
    if version >= 4:
        request += struct.pack(">b", 0)  # allow_auto_topic_creation
    if version >= 8:
        request += struct.pack(">bb", 0, 0)  # include cluster/topic authorized operations
    body = conn.request(METADATA, version, request)
    if version >= 3:
        body.int32()  # throttle_time_ms
    brokers = []
    for _ in range(body.array_len()):
        node, host, port, _rack = body.int32(), body.string(), body.int32(), body.string()
        brokers.append((node, host or "", port))
    if version >= 2:
        body.string()  # cluster_id
    body.int32()  # controller_id
    topics = []
    for _ in range(body.array_len()):
        error, name, _internal = body.int16(), body.string(), body.int8()
        partitions = body.array_len()
        topics.append((name or "", error, partitions))
        for _ in range(partitions):
            body.int16(), body.int32(), body.int32()  # error_code, partition, leader
            if version >= 7:
                body.int32()  # leader_epoch
            for _ in range(body.array_len()):  # replicas
                body.int32()
            for _ in range(body.array_len()):  # isr
                body.int32()
            if version >= 5:
                for _ in range(body.array_len()):  # offline replicas
                    body.int32()
        if version >= 8:
            body.int32()  # topic_authorized_operations
    if version >= 8:
        body.int32()  # cluster_authorized_operations
    return brokers, topics


def metadata_version(versions: dict[int, tuple[int, int]]) -> int:
    """v1 where offered (nisshi, Kafka 3); the oldest offered otherwise (Kafka 4 starts at v4)."""
    if METADATA not in versions:
        raise Unhealthy("ApiVersions does not offer Metadata")
    low, high = versions[METADATA]
    version = max(low, 1)
    if version > min(high, 8):
        raise Unhealthy(f"ApiVersions offers Metadata v{low}-v{high}; this check speaks v1-v8")
    return version


def check(host: str, port: int, timeout: float) -> tuple[int, str]:
    where = f"{host}:{port}"
    try:
        conn = Connection(host, port, timeout)
    except ConnectionRefusedError:
        return NOTHING, f"nothing listens on {where} (connection refused)"
    except socket.gaierror as err:
        return NOTHING, f"cannot resolve {host}: {err}"
    except socket.timeout:
        # On loopback this is a listener whose backlog is full; elsewhere maybe a firewall.
        return NOT_KAFKA, f"{where}: TCP connect timed out after {timeout:g} s (a listener that accepts nothing, or a filtered port)"
    except OSError as err:
        if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return NOTHING, f"{where} unreachable: {err.strerror}"
        return NOT_KAFKA, f"{where}: connect failed: {err}"
    step = "ApiVersions"
    try:
        version = metadata_version(api_versions(conn))
        step = "Metadata"
        brokers, topics = metadata(conn, version)
        if not brokers:
            raise Unhealthy("Metadata named no broker")
    except socket.timeout:
        what = "does not answer" if step == "ApiVersions" else "answers ApiVersions but not"
        return NOT_KAFKA, f"{where} accepts connections but {what} a Kafka {step} request within {timeout:g} s"
    except (Unhealthy, OSError) as err:
        what = "accepts connections but does not speak Kafka" if step == "ApiVersions" \
            else "answers ApiVersions but fails Metadata"
        return NOT_KAFKA, f"{where} {what}: {err}"
    finally:
        conn.close()
    listed = ", ".join(f"{node}@{h}:{p}" for node, h, p in brokers)
    return HEALTHY, f"Kafka broker answers on {where}: brokers {listed}, {len(topics)} topics"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds for the whole exchange, connect included (default 2)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing, only the exit status")
    args = parser.parse_args()
    status, message = check(args.host, args.port, args.timeout)
    if not args.quiet:
        print(message)
    return status


if __name__ == "__main__":
    sys.exit(main())
