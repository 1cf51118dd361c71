#!/usr/bin/env python3
"""The benchmark harness: starts the four services, measures each figure beside
its physical limit in the same run, and writes report.md and results.json.

Figures are medians over repeated runs. Budgets are judged here, never in tests.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "infra", "scripts"))
import chain_stages  # noqa: E402
import gateway_hop  # noqa: E402
from load import median_runs, wrk  # noqa: E402
from principals import operator_client, with_principal  # noqa: E402

SERVICES = {"user-service": 3001, "order-service": 3002, "payment-service": 3003, "api-gateway": 3005}
# The services with a database of their own, and the word in the name of the run's copy
# (<name>_<word>_<stamp>).
DATABASES = {"user-service": "users", "order-service": "orders", "payment-service": "payments"}
# The gateway serves /health/* and /metrics on an admin port of its own, this far above its
# public one (3005 → 9305, the default).
ADMIN_PORT_OFFSET = 6300
# This machine's development secrets, exported by bench.sh (infra/scripts/secrets.sh).
API_KEY = os.environ["SERVICE_API_KEY"]
ADMIN_PASSWORD = os.environ["ADMIN_PASSWORD"]
MIB = 1024 * 1024

BUDGETS = {
    "idle_rss_mib": 20,
    "load_rss_mib": 64,
    "start_to_ready_s": 0.5,
    "order_chain_margin_ms": 5,
    "settle_over_accept": 0.9,
    "flood_drain_s": 2.0,
    "demo_drain_s": 1.5,
    "backlog_drain_per_s": 10000,
    "hot_key_others_s": 5.0,
}
# The consumers' fetch size, as the services read it (KAFKA_FETCH_MAX_BYTES; its default
# in shared/eventing/src/configuration.rs).
FETCH_MAX_BYTES = int(os.environ.get("KAFKA_FETCH_MAX_BYTES", 32 * 1024))
# Partitions of the topics the services create (KAFKA_TOPIC_PARTITIONS: common.sh sets 1 for
# the local broker); the broker's limits are measured on a topic of the same shape.
PARTITIONS = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", 3))
ORDER_BODY_ITEMS = [{"productId": "product-bench", "quantity": 2, "price": 9.99}]


def log(message):
    print(f"==> {message}", flush=True)


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def psql(database_url, sql, database="postgres"):
    return subprocess.run(["psql", f"{database_url}/{database}", "-Atqc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def rss_mib(pid, field="VmRSS"):
    """`pid`'s resident memory in MiB: all of it (`VmRSS`), or one part (`RssAnon`, `RssFile`)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The four services as processes, with databases and topics of their own (named after
    `name`), listening on `ports` (the standard ones by default; the gateway is pointed at
    the other two)."""

    def __init__(self, args, name="bench", ports=None):
        self.args = args
        self.ports = ports or SERVICES
        stamp = datetime.now().strftime("%Y%m%d%H%M%S")
        self.databases = {service: f"{name}_{word}_{stamp}" for service, word in DATABASES.items()}
        self.user_db, self.order_db = self.databases["user-service"], self.databases["order-service"]
        self.payment_db = self.databases["payment-service"]
        self.prefix = f"{name}{stamp}."
        self.processes = {}
        self.slow_stops = []
        self.logs = tempfile.mkdtemp(prefix="bench-logs-")

    def env(self, service):
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.args.database_url,
            "KAFKA_BROKERS": self.args.brokers,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "none",
            "RUST_LOG": "warn",
            "PAYMENT_DELAY_MS": "0",
            "PAYMENT_FAILURE_RATE": "0",
            "API_RATE_LIMIT_PER_MINUTE": "100000000",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000000",
            "PORT": str(self.ports[service]),
            "USER_SERVICE_URL": f"http://127.0.0.1:{self.ports['user-service']}",
            "ORDER_SERVICE_URL": f"http://127.0.0.1:{self.ports['order-service']}",
        })
        if service == "api-gateway":
            env["ADMIN_PORT"] = str(self.probe_port(service))
        if service in self.databases:
            env["DATABASE_NAME"] = self.databases[service]
        return with_principal(env, service)

    def probe_port(self, service):
        """Where `service` answers /health/* and /metrics."""
        port = self.ports[service]
        return port + ADMIN_PORT_OFFSET if service == "api-gateway" else port

    def start(self, service, extra_env=None):
        """Starts one service; returns seconds from exec to /health/ready answering 200."""
        log_file = open(os.path.join(self.logs, f"{service}.log"), "ab")
        started = time.perf_counter()
        env = {**self.env(service), **(extra_env or {})}
        for port in {self.ports[service], self.probe_port(service)}:
            # Another instance would answer for this one, which could not bind; one that is
            # shutting down gets a few seconds.
            taken_until = time.time() + 15
            while port_answers(port):
                if time.time() > taken_until:
                    sys.exit(f"port {port} is taken: stop what listens there (make down) before the bench")
                time.sleep(0.2)
        process = subprocess.Popen([os.path.join(self.args.bin_dir, service)], env=env,
                                   stdout=log_file, stderr=log_file)
        self.processes[service] = process
        url = f"http://127.0.0.1:{self.probe_port(service)}/health/ready"
        deadline = started + 60
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                sys.exit(f"{service} exited during start-up; see {self.logs}/{service}.log")
            try:
                if http("GET", url, timeout=1)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        sys.exit(f"{service} was not ready within 60 s; see {self.logs}/{service}.log")

    def stop(self, service):
        """SIGTERM; a service still running after 30 s is killed and named in the results."""
        process = self.processes.pop(service, None)
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"  {service} did not stop within 30 s of SIGTERM; killed")
                self.slow_stops.append(service)
                process.kill()
                process.wait()

    def stop_all(self):
        for service in list(self.processes):
            self.stop(service)

    def create_databases(self):
        for db in self.databases.values():
            psql(self.args.database_url, f'CREATE DATABASE "{db}"')

    def drop_databases(self):
        for db in self.databases.values():
            psql(self.args.database_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


class RssSampler(threading.Thread):
    """Samples every service's RSS every 50 ms for the whole run; peaks are kept per step."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack, self.step, self.peaks, self.done = stack, "start-up", {}, threading.Event()

    def run(self):
        while not self.done.is_set():
            step = self.peaks.setdefault(self.step, {})
            for service, process in list(self.stack.processes.items()):
                try:
                    step[service] = max(step.get(service, 0), rss_mib(process.pid))
                except OSError:
                    pass
            time.sleep(0.05)


def port_answers(port):
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def idle_cpu(args, stack, seconds):
    """The share of a core each service and the broker use while nobody calls the platform:
    what its consumers' polling, heartbeats, commits and housekeeping cost a machine at rest."""
    pids = {s: p.pid for s, p in stack.processes.items()}
    if args.broker_pid_file:
        pids["broker (nisshi)"] = int(open(args.broker_pid_file).read())
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """CPU seconds every core of the machine has spent busy so far (not idle, not waiting on I/O)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds():
    """CPU seconds used so far by PostgreSQL's processes, those that ended included: a
    backend's time moves to the postmaster's children's time when it exits (pgbench's
    connections end with it; the pools' backends live as long as their services)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass  # exited meanwhile
    return total


def kafka_hop(brokers, prefix, count):
    """One produce → consume hop on the same broker, consumer tuned like the services."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{prefix}bench.hop"
    admin = AdminClient(operator_client(brokers))  # must outlive the request
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({**operator_client(brokers), "acks": "all", "linger.ms": 0})
    consumer = Consumer({**operator_client(brokers), "group.id": f"{prefix}hop", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.05)
    samples = []
    for i in range(count + 5):
        sent = time.perf_counter()
        producer.produce(topic, value=str(i).encode())
        producer.flush(5)
        deadline = time.time() + 10
        while True:
            message = consumer.poll(1)
            if message is not None and not message.error() and message.value() == str(i).encode():
                break
            if time.time() > deadline:
                sys.exit(f"hop {i}: message not consumed within 10 s")
        if i >= 5:  # the first hops warm connections up
            samples.append((time.perf_counter() - sent) * 1000)
    consumer.close()
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1], "samples": len(samples)}


def register(gateway, email, retries=50):
    """Signs up; a 503 (hashing at capacity) is retried after its Retry-After."""
    for _ in range(retries):
        status, body = http("POST", f"{gateway}/api/auth/register",
                            {"email": email, "name": "Bench User", "password": "SecurePass123!"})
        if status == 201:
            return json.loads(body)
        if status != 503:
            sys.exit(f"registration failed: {status} {body[:200]}")
        time.sleep(0.2)
    sys.exit(f"registration of {email} refused {retries} times")


def wait_rows(args, database, sql, done, timeout):
    """Polls `sql` every 20 ms until `done(result)`; returns the last result."""
    deadline = time.time() + timeout
    while True:
        result = psql(args.database_url, sql, database)
        if done(result) or time.time() > deadline:
            return result
        time.sleep(0.02)


SERIAL_BUDGET_S = 30


def broker_limits(brokers, prefix, pipelined_count, serial_count):
    """What the broker carries on its own, in this run: produce pipelined (many in flight),
    produce one at a time (each acknowledged before the next), and one consumer reading."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{prefix}bench.limits"
    admin = AdminClient(operator_client(brokers))
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    settings = {**operator_client(brokers), "acks": "all", "linger.ms": 1, "enable.idempotence": False,
                "max.in.flight.requests.per.connection": 1}
    producer = Producer(settings)
    payload = b"x" * 150
    # Bounded in time as well as count: on a store the broker crawls through, 500 serial
    # produces could take many minutes, and the rate is what is measured.
    started, sent = time.perf_counter(), 0
    while sent < serial_count and time.perf_counter() - started < SERIAL_BUDGET_S:
        producer.produce(topic, key=str(sent % 50).encode(), value=payload)
        producer.flush(10)
        sent += 1
    serial = sent / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(pipelined_count):
        while True:
            try:
                producer.produce(topic, key=str(i % 50).encode(), value=payload)
                break
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    producer.flush(60)
    pipelined = pipelined_count / (time.perf_counter() - started)
    consumer = Consumer({**operator_client(brokers), "group.id": f"{prefix}limits", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10, "enable.auto.commit": False})
    consumer.subscribe([topic])
    total, read, first = sent + pipelined_count, 0, None
    deadline = time.time() + 60
    while read < total and time.time() < deadline:
        for message in consumer.consume(1000, 1):
            if not message.error():
                first = first or time.perf_counter()
                read += 1
    consumed = read / (time.perf_counter() - first) if first else 0
    consumer.close()
    return {"pipelined_produce_per_s": pipelined, "serial_produce_per_s": serial, "consume_per_s": consumed,
            "messages": total, "backlog_drain": backlog_drain(brokers, prefix, topic, min(total, 30000))}


def backlog_drain(brokers, prefix, topic, count):
    """One consumer reading `count` records of a backlog with the services' fetch settings."""
    from confluent_kafka import Consumer

    consumer = Consumer({**operator_client(brokers), "group.id": f"{prefix}drain", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10, "enable.auto.commit": False, "fetch.max.bytes": FETCH_MAX_BYTES,
                         "message.max.bytes": FETCH_MAX_BYTES, "max.partition.fetch.bytes": FETCH_MAX_BYTES})
    consumer.subscribe([topic])
    read, first, deadline = 0, None, time.time() + 60
    while read < count and time.time() < deadline:
        for message in consumer.consume(1000, 1):
            if not message.error():
                first = first or time.perf_counter()
                read += 1
    elapsed = time.perf_counter() - first if first else 0
    consumer.close()
    return {"records": read, "fetch_max_bytes": FETCH_MAX_BYTES, "per_s": read / elapsed if elapsed else 0}


def paced(rate, duration, one):
    """Calls `one(i)` in a thread of its own at `rate` per second for `duration` seconds, then waits for all."""
    threads, begin = [], time.time()
    for i in range(int(rate * duration)):
        pause = begin + i / rate - time.time()
        if pause > 0:
            time.sleep(pause)
        thread = threading.Thread(target=one, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


def order_chain(args, stack, gateway, token, user_id, rate, duration):
    """POST /api/orders at `rate`/s. Returns order → paid latencies, the event chain's own (two hops:
    order.created, payment.completed), from the order's storing (`created_at`) to its settlement
    (`updated_at`), and, beside them, from the client's send (the HTTP request included)."""
    sends, lock = {}, threading.Lock()

    def one(_):
        sent = time.time()
        status, body = http("POST", f"{gateway}/api/orders", {"userId": user_id, "items": ORDER_BODY_ITEMS},
                            {"Authorization": f"Bearer {token}"})
        if status != 201:
            sys.exit(f"order failed: {status} {body[:200]}")
        with lock:
            sends[json.loads(body)["id"]] = sent

    before = chain_scrape(stack)
    paced(rate, duration, one)
    ids = ",".join(f"'{i}'" for i in sends)
    rows = wait_rows(args, stack.order_db,
                     f"SELECT id, EXTRACT(EPOCH FROM created_at), EXTRACT(EPOCH FROM updated_at) FROM orders "
                     f"WHERE status = 'paid' AND id IN ({ids})",
                     lambda r: len(r.splitlines()) >= len(sends), 60)
    paid = {fields[0]: (float(fields[1]), float(fields[2])) for fields in (line.split("|") for line in rows.splitlines() if line)}
    after = chain_scrape(stack)
    means = chain_means(before, after)
    chain = sorted((settled - stored) * 1000 for stored, settled in paid.values())
    from_send = sorted((paid[o][1] - sends[o]) * 1000 for o in paid)
    p99 = lambda xs: xs[max(0, int(len(xs) * 0.99) - 1)]
    return {"rate_per_s": rate, "orders": len(sends), "settled": len(paid),
            "p50_ms": statistics.median(chain), "p99_ms": p99(chain),
            "from_send_p50_ms": statistics.median(from_send), "from_send_p99_ms": p99(from_send),
            "stages": chain_stages.stages(args.brokers, stack.prefix, paid), "mean_ms": means,
            "pool_pings": pool_pings(before, after)}


def simultaneous_signups(args, stack, gateway, count):
    """`count` sign-ups sent at once; seconds from the last 201 to the last welcome order settled."""
    answered, lock, barrier = {}, threading.Lock(), threading.Barrier(count)

    def one(i):
        barrier.wait()
        user = register(gateway, f"demo-{i}-{uuid.uuid4().hex[:8]}@example.com")
        with lock:
            answered[user["user"]["id"]] = time.time()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = ",".join(f"'{u}'" for u in answered)
    row = wait_rows(args, stack.order_db,
                    f"SELECT count(*), EXTRACT(EPOCH FROM max(updated_at)) FROM orders WHERE kind = 'welcome' "
                    f"AND status IN ('paid', 'payment_failed') AND user_id IN ({ids})",
                    lambda r: int(r.split("|")[0]) >= len(answered), 60)
    settled, last = row.split("|")
    return {"users": count, "settled": int(settled), "user_ids": list(answered),
            "last_settled_after_last_201_s": float(last) - max(answered.values()) if last else None}


def hot_key(args, stack, gateway, token, hot_user, others, burst):
    """`burst` orders of one user at once, then one order each of `others` while the burst
    is in flight: seconds from each other order's 201 to its settlement. With a 1 s payment,
    the burst alone takes `burst` seconds to settle; the others must not wait behind it."""
    def post(user):
        status, body = http("POST", f"{gateway}/api/orders", {"userId": user, "items": ORDER_BODY_ITEMS},
                            {"Authorization": f"Bearer {token}"})
        if status != 201:
            sys.exit(f"order failed: {status} {body[:200]}")
        return json.loads(body)["id"]

    threads = [threading.Thread(target=post, args=(hot_user,)) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answered = {}
    for user in others:
        order = post(user)
        answered[order] = time.time()
    ids = ",".join(f"'{o}'" for o in answered)
    rows = wait_rows(args, stack.order_db,
                     f"SELECT id, EXTRACT(EPOCH FROM updated_at) FROM orders WHERE status IN ('paid', 'payment_failed') "
                     f"AND id IN ({ids})", lambda r: len(r.splitlines()) >= len(answered), 120)
    settled = {fields[0]: float(fields[1]) for fields in (line.split("|") for line in rows.splitlines() if line)}
    waits = sorted(settled[o] - answered[o] for o in settled)
    return {"burst": burst, "others": len(others), "others_settled": len(settled),
            "others_max_s": max(waits) if waits else None, "others_p50_s": statistics.median(waits) if waits else None}


def signup_burst(args, stack, gateway, rate, duration):
    """Sign-ups at `rate`/s without retrying: counts 201 and 503, then checks that every
    201 user got exactly one welcome order."""
    outcomes, lock = {"201": [], "503": 0, "other": 0}, threading.Lock()

    def one(i):
        try:
            status, body = http("POST", f"{gateway}/api/auth/register",
                                {"email": f"burst-{i}-{uuid.uuid4().hex[:8]}@example.com", "name": "Bench User",
                                 "password": "SecurePass123!"})
        except OSError:  # no answer within the client's 10 s
            status, body = None, b""
        with lock:
            if status == 201:
                outcomes["201"].append(json.loads(body)["user"]["id"])
            elif status == 503:
                outcomes["503"] += 1
            else:
                outcomes["other"] += 1

    paced(rate, duration, one)
    created = outcomes["201"]
    ids = ",".join(f"'{u}'" for u in created) or "NULL"
    query = (f"SELECT count(*), count(DISTINCT user_id) FROM orders WHERE kind = 'welcome' "
             f"AND status IN ('paid', 'payment_failed') AND user_id IN ({ids})")
    row = wait_rows(args, stack.order_db, query, lambda r: int(r.split("|")[0]) >= len(created), 60)
    welcome, distinct = (int(x) for x in row.split("|"))
    return {"rate_per_s": rate, "sent": int(rate * duration), "created_201": len(created), "refused_503": outcomes["503"],
            "other_or_no_answer": int(rate * duration) - len(created) - outcomes["503"], "welcome_orders": welcome, "users_with_welcome_order": distinct,
            "exactly_one_each": welcome == len(created) == distinct}


def pgbench_read(args, seconds):
    database = "bench_pgbench"
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql(args.database_url, f'CREATE DATABASE "{database}"')
    subprocess.run(["pgbench", "-q", "-i", "-s", "1", f"{args.database_url}/{database}"], check=True, capture_output=True)
    output = subprocess.run(["pgbench", "-S", "-c", "16", "-j", "2", "-T", str(seconds), f"{args.database_url}/{database}"],
                            check=True, capture_output=True, text=True).stdout
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return pgbench_figures(output)


def pgbench_figures(output):
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    return {"tps": tps, "latency_avg_ms": latency}


# The statement order-service runs for POST /orders (order-service/src/repository/orders.rs,
# INSERT_WITH_EVENT) with values of the same shape and size as the API's.
WRITE_SCRIPT = """\\set u random(1, 50)
WITH new_order AS (
    INSERT INTO orders (id, user_id, kind, total_cents, created_at, updated_at)
    VALUES (gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, 'standard', 1998, now(), now())
    ON CONFLICT (user_id) WHERE kind = 'welcome' DO NOTHING
    RETURNING id, user_id, kind, status, total_cents, created_at, updated_at
), lines AS (
    INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)
    SELECT new_order.id, item.* FROM new_order, UNNEST(ARRAY[1], ARRAY['product-bench'], ARRAY[2], ARRAY[999]::bigint[]) AS item
), event AS (
    INSERT INTO outbox (event_id, topic, event_type, message_key, payload, headers)
    SELECT gen_random_uuid(), 'order.created', 'platform.order.created.v1', new_order.user_id::text,
      jsonb_build_object('orderId', new_order.id, 'userId', new_order.user_id, 'items',
        '[{"productId":"product-bench","quantity":2,"price":"9.99"}]'::jsonb, 'totalAmount', '19.98', 'createdAt', now()),
      '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","x-request-id":"0b8e7f4e-2b1c-4c4e-9a55-6f1d1e0c1a2b"}'::jsonb
    FROM new_order
)
SELECT id, user_id, kind, status, total_cents, created_at, updated_at FROM new_order;
"""


def pgbench_write(args, seconds, connections):
    """The order write statement alone, on a database with order-service's schema."""
    database = "bench_pgbench_write"
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql(args.database_url, f'CREATE DATABASE "{database}"')
    migrations = os.path.join(os.path.dirname(__file__), "..", "order-service", "migrations")
    for name in sorted(os.listdir(migrations)):
        subprocess.run(["psql", f"{args.database_url}/{database}", "-qf", os.path.join(migrations, name)],
                       check=True, capture_output=True)
    script = os.path.join(tempfile.mkdtemp(), "write.sql")
    with open(script, "w") as out:
        out.write(WRITE_SCRIPT)
    machine, postgres = machine_cpu_seconds(), postgres_cpu_seconds()
    output = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", "2", "-T", str(seconds),
                             "-f", script, f"{args.database_url}/{database}"],
                            check=True, capture_output=True, text=True).stdout
    machine, postgres = machine_cpu_seconds() - machine, postgres_cpu_seconds() - postgres
    psql(args.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    figures = pgbench_figures(output)
    transactions = figures["tps"] * seconds
    if transactions:
        # What one transaction costs PostgreSQL and the machine (pgbench itself included).
        figures["machine_cpu_us_per_tx"] = machine / transactions * 1e6
        figures["postgres_cpu_us_per_tx"] = postgres / transactions * 1e6
    return figures


def metric_sums(url, names, prefix):
    """{(name, topic): value} for the `_sum` and `_count` series of `names` (histograms) and
    for `names` themselves (counters) at a /metrics URL, topics without the deployment's `prefix`."""
    _, body = http("GET", url)
    found = {}
    for line in body.decode().splitlines():
        match = re.match(r'^(\w+?)(_sum|_count|)(?:\{([^}]*)\})? ([0-9.eE+-]+)$', line)
        if match and match.group(1) in names:
            topic = re.search(r'topic="([^"]*)"', match.group(3) or "")
            key = (match.group(1) + match.group(2), topic.group(1).removeprefix(prefix) if topic else "")
            found[key] = found.get(key, 0) + float(match.group(4))
    return found


def mean_ms(before, after, name, topic):
    """Mean of a histogram between two scrapes, in ms."""
    total = after.get((f"{name}_sum", topic), 0) - before.get((f"{name}_sum", topic), 0)
    count = after.get((f"{name}_count", topic), 0) - before.get((f"{name}_count", topic), 0)
    return total / count * 1000 if count else None


CHAIN_METRICS = ("kafka_produce_duration_seconds", "kafka_handler_duration_seconds", "db_pool_pings_total")


def chain_scrape(stack):
    """The chain's handler and produce histograms of order-service and payment-service, now."""
    return {s: metric_sums(f"http://127.0.0.1:{stack.ports[s]}/metrics", CHAIN_METRICS, stack.prefix)
            for s in ("order-service", "payment-service")}


def chain_means(before, after):
    """Where a settlement's time went between two [`chain_scrape`]s: each step's mean, in ms."""
    steps = {
        "payment-service: handling order.created": ("payment-service", "kafka_handler_duration_seconds", "order.created"),
        "payment-service: producing payment.completed": ("payment-service", "kafka_produce_duration_seconds", "payment.completed"),
        "order-service: handling payment.completed": ("order-service", "kafka_handler_duration_seconds", "payment.completed"),
        "order-service: producing order.created (relay)": ("order-service", "kafka_produce_duration_seconds", "order.created"),
    }
    return {step: mean_ms(before[s], after[s], name, topic) for step, (s, name, topic) in steps.items()}


def pool_pings(before, after):
    """Per service, the pooled connections pinged before a statement between two [`chain_scrape`]s."""
    key = ("db_pool_pings_total", "")
    return {s: int(after[s].get(key, 0) - before[s].get(key, 0)) for s in before}


def order_flood(args, stack, gateway, token, users, duration, connections):
    """`duration` s of POST /api/orders at full speed across `users`, then the wait until
    every order it placed reached a final status."""
    script = os.path.join(tempfile.mkdtemp(), "flood.lua")
    items = json.dumps(ORDER_BODY_ITEMS)
    with open(script, "w") as lua:
        lua.write("local users = {" + ",".join(f'"{u}"' for u in users) + "}\n"
                  "local n = 0\n"
                  f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                  f'wrk.headers["Authorization"] = "Bearer {token}"\n'
                  "request = function()\n  n = n + 1\n"
                  "  local body = '{\"userId\":\"' .. users[(n % #users) + 1] .. '\",\"items\":" + items.replace('"', '\\"') + "}'\n"
                  "  return wrk.format(nil, nil, nil, body)\nend\n")
    broker_pid = int(open(args.broker_pid_file).read()) if args.broker_pid_file else None
    pids = {s: p.pid for s, p in stack.processes.items()}
    if broker_pid:
        pids["broker (nisshi)"] = broker_pid
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    shared_before = {"PostgreSQL": postgres_cpu_seconds(), "the whole machine": machine_cpu_seconds()}
    since = psql(args.database_url, "SELECT EXTRACT(EPOCH FROM clock_timestamp())", stack.order_db)
    before = chain_scrape(stack)
    started = time.time()
    load = wrk(f"{gateway}/api/orders", duration, connections, script=script)
    ended = time.time()
    window = f"kind = 'standard' AND created_at >= to_timestamp({since})"
    row = wait_rows(args, stack.order_db,
                    f"SELECT count(*), count(*) FILTER (WHERE status = 'pending'), EXTRACT(EPOCH FROM max(updated_at)) "
                    f"FROM orders WHERE {window}",
                    lambda r: int(r.split("|")[1]) == 0, 180)
    settled_at = time.time()
    after = chain_scrape(stack)
    chain_ms = chain_means(before, after)
    placed, pending, last = row.split("|")
    placed, pending, last = int(placed), int(pending), float(last)
    spent = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    spent["PostgreSQL"] = postgres_cpu_seconds() - shared_before["PostgreSQL"]
    spent["the whole machine"] = machine_cpu_seconds() - shared_before["the whole machine"]
    cpu = {name: seconds / (settled_at - started) for name, seconds in spent.items()}
    settled = placed - pending
    # What an order costs each process through its settlement: the chain's share included,
    # which a window over the writes alone misses while the chain is behind them.
    per_order = {name: seconds / settled * 1e6 for name, seconds in spent.items()} if settled else {}
    return {"duration_s": duration, "users": len(users), "accept_per_s": load["rps"], "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"], "errors": load["errors"], "placed": placed, "still_pending": pending,
            "settle_per_s": settled / (last - started) if settled else 0,
            "last_settled_after_flood_end_s": last - ended if pending == 0 else None,
            "waited_s": settled_at - ended, "cpu_cores_used": cpu, "cpu_us_per_settled_order": per_order,
            "chain_mean_ms": chain_ms}


def hop_step(args, stack, sampler, gateway, token, admin_id, smoke):
    """perf's view of the gateway under the read load, then the gateway's hop (bench/gateway_hop.py)."""
    log("Gateway hop: a read and a write, through the gateway and straight to the service, at 1 and 16 connections")
    sampler.step = "gateway hop"
    duration, repeats = (1, 1) if smoke else (5, 3)
    # The hop measures what a request costs the API. Bounded admission would hold its writes
    # to the event chain's pace (the flood measures that), so order-service runs unbounded here.
    stack.stop("order-service")
    stack.start("order-service", {"ORDER_ADMISSION_MAX_PENDING": str(10**9)})
    profile = None
    if not smoke:
        # Before the writes: they leave the event chain a backlog to work through for minutes
        # (one principal's orders, handled one after another), which would crowd the profile.
        log("  profiling the gateway under the read load (perf)")
        url, bearer = f"{gateway}/api/users/{admin_id}", [f"Authorization: Bearer {token}"]
        profile = gateway_hop.profile(stack.processes["api-gateway"].pid, lambda: wrk(url, 10, 16, bearer))
    pids = {s: p.pid for s, p in stack.processes.items()}
    chain = {"payment-service": lambda: cpu_seconds(pids["payment-service"]), "PostgreSQL": postgres_cpu_seconds,
             gateway_hop.MACHINE: machine_cpu_seconds}
    if args.broker_pid_file:
        broker_pid = int(open(args.broker_pid_file).read())
        chain["broker (nisshi)"] = lambda: cpu_seconds(broker_pid)
    hop = gateway_hop.measure(stack.ports, pids, gateway, token, admin_id, API_KEY, ORDER_BODY_ITEMS, duration, repeats,
                              (1, 4) if smoke else (1, 16), chain)
    # How far the event chain is behind the writes when they end (they are one principal's).
    hop["pending_after_writes"] = int(psql(args.database_url, "SELECT count(*) FROM orders WHERE status = 'pending'",
                                           stack.order_db))
    # The write's limit in the same state of the machine and database as the writes beside it.
    hop["pgbench_write"] = pgbench_write(args, duration, 4 if smoke else 16)
    if profile:
        hop["profile"] = profile
    for kind in ("read", "write"):
        for connections, f in hop[kind].items():
            log(f"  {kind} at {connections}: {f['gateway']['rps']:.0f} vs {f['direct']['rps']:.0f} req/s direct "
                f"({f['ratio_rps']:.2f}), p50 +{f['added_p50_ms']:.3f} ms")
    return hop


def chain_step(args, stack, sampler, gateway, token, admin_id, smoke, results):
    """The broker's own hop, then orders at 10/s timed from stored to paid, stage by stage."""
    log("Event chain: one produce → consume hop on the same broker")
    sampler.step = "hop"
    results["hop"] = kafka_hop(args.brokers, stack.prefix, 20 if smoke else 200)
    log("Chain latency: POST /api/orders → paid at 10/s")
    sampler.step = "chain latency"
    results["order_chain"] = c = order_chain(args, stack, gateway, token, admin_id, 10, 1 if smoke else 10)
    log(f"  stored → paid p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms; from the send p50 {c['from_send_p50_ms']:.1f} ms "
        f"(hop p50 {results['hop']['p50_ms']:.2f} ms); stages {c['stages']}; means {c['mean_ms']}; "
        f"pool pings {c['pool_pings']}")


def chain_stage_lines(chain):
    """The report's lines on where the chain's time goes, from the records' own timestamps."""
    st, means = chain.get("stages") or {}, chain.get("mean_ms") or {}
    if not st:
        return []
    mean = lambda step: f"{means[step]:.2f}" if means.get(step) is not None else "-"
    return [
        "| stage (p50 over the orders, ms resolution) | ms | inside it |", "|---|---|---|",
        f"| relay: stored → `order.created` handed over | {st['relay_p50_ms']:.1f} | |",
        f"| payment: → `payment.completed` handed over | {st['payment_p50_ms']:.1f} | broker stores the first "
        f"(relay's acknowledgement, mean {mean('order-service: producing order.created (relay)')} ms), payment-service fetches it |",
        f"| settle: → order paid | {st['settle_p50_ms']:.1f} | broker stores the second (acknowledgement, mean "
        f"{mean('payment-service: producing payment.completed')} ms), order-service fetches and handles it (mean "
        f"{mean('order-service: handling payment.completed')} ms) |", ""]


def flood_step(args, stack, gateway, token, user_count, duration, connections):
    """Signs `user_count` users up, waits for their welcome orders, then floods."""
    log(f"Order flood: POST /api/orders at full speed across {user_count} users, then until every order settled "
        f"(consumers fetch {FETCH_MAX_BYTES} bytes at most)")
    users = [register(gateway, f"flood-{i}-{uuid.uuid4().hex[:8]}@example.com")["user"]["id"]
             for i in range(user_count)]
    # order-service takes orders for users it has heard of: wait for their welcome orders.
    ids = ",".join(f"'{u}'" for u in users)
    wait_rows(args, stack.order_db, f"SELECT count(*) FROM orders WHERE kind = 'welcome' AND user_id IN ({ids})",
              lambda r: int(r) >= len(users), 60)
    f = order_flood(args, stack, gateway, token, users, duration, connections)
    ratio = f["settle_per_s"] / f["accept_per_s"] if f["accept_per_s"] else 0
    drain = f["last_settled_after_flood_end_s"]
    log(f"  accepted {f['accept_per_s']:.0f}/s, settled {f['settle_per_s']:.0f}/s (ratio {ratio:.2f}); last settled "
        f"{'never' if drain is None else f'{drain:.1f} s'} after the flood; {f['still_pending']} pending after "
        f"{f['waited_s']:.1f} s; cores used {f['cpu_cores_used']}; mean ms {f['chain_mean_ms']}")
    return f


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["full", "smoke", "flood", "hop", "chain"], default="full",
                        help="flood: only the order flood (to compare settings), printed and written to flood.json")
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--broker-pid-file")
    parser.add_argument("--limits-brokers", help="an empty broker of the same build for its own limits")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    smoke = args.mode == "smoke"
    duration, repeats, connections = (1, 1, 4) if smoke else (5, 3, 16)
    results = {"mode": args.mode, "when": datetime.now(timezone.utc).isoformat(), "machine": f"{os.cpu_count()} cores",
               "settings": {"profile": "debug" if smoke else "release", "payment_delay_ms": 0,
                            "partitions": PARTITIONS, "wrk_connections": connections, "KAFKA_MAX_IN_FLIGHT": "default (64)",
                            "HASHING_MAX_QUEUED": "default (64)"}}

    stack = Stack(args)
    stack.create_databases()
    sampler = RssSampler(stack)
    try:
        log("Start-up: exec → /health/ready, infrastructure already up")
        results["start_to_ready_s"] = {s: stack.start(s) for s in SERVICES}
        time.sleep(1)
        results["idle_rss_mib"] = {s: rss_mib(p.pid) for s, p in stack.processes.items()}
        # Resident memory a process owns, and the pages of its binary and libraries it has
        # mapped (shared with every process that maps the same files).
        results["idle_rss_parts_mib"] = {s: {"anonymous": rss_mib(p.pid, "RssAnon"), "files": rss_mib(p.pid, "RssFile")}
                                         for s, p in stack.processes.items()}
        results["idle_cpu_cores"] = idle_cpu(args, stack, 1 if smoke else 10)
        log("  at rest, share of a core: " + ", ".join(f"{n} {c:.3f}" for n, c in results["idle_cpu_cores"].items()))
        sampler.start()
        gateway = "http://127.0.0.1:3005"
        status, body = http("POST", f"{gateway}/api/auth/login",
                            {"email": "admin@example.com", "password": ADMIN_PASSWORD})
        admin = json.loads(body)
        token, admin_id = admin["access_token"], admin["user"]["id"]

        if args.mode == "hop":
            results["gateway_hop"] = hop_step(args, stack, sampler, gateway, token, admin_id, smoke)
            lines, budgets = gateway_hop.report(results["gateway_hop"], results["gateway_hop"]["pgbench_write"],
                                                sampler.peaks.get("gateway hop", {}).get("api-gateway", 0))
            with open(os.path.join(args.out, "hop.json"), "w") as out:
                json.dump(results, out, indent=2)
            print("\n".join(lines + [""] + [f"{verdict(ok)}  {name}: {measured}" for name, ok, measured in budgets]))
            return

        if args.mode == "chain":
            chain_step(args, stack, sampler, gateway, token, admin_id, smoke, results)
            with open(os.path.join(args.out, "chain.json"), "w") as out:
                json.dump(results, out, indent=2)
            return

        if args.mode == "flood":
            results["flood"] = flood_step(args, stack, gateway, token, 50, 15, connections)
            with open(os.path.join(args.out, "flood.json"), "w") as out:
                json.dump(results, out, indent=2)
            return

        log("Broker limits: pipelined and serial produce, one consumer reading")
        sampler.step = "broker limits"
        results["broker"] = broker_limits(args.limits_brokers or args.brokers, stack.prefix,
                                          2000 if smoke else 50000, 100 if smoke else 2000)
        b = results["broker"]
        log(f"  produce pipelined {b['pipelined_produce_per_s']:.0f}/s, serial {b['serial_produce_per_s']:.0f}/s; "
            f"consume {b['consume_per_s']:.0f}/s")

        chain_step(args, stack, sampler, gateway, token, admin_id, smoke, results)

        log(f"Demo settings: {3 if smoke else 20} sign-ups at once with a 1 s payment delay")
        sampler.step = "demo settings"
        stack.stop("payment-service")
        stack.start("payment-service", {"PAYMENT_DELAY_MS": "1000"})
        results["demo"] = simultaneous_signups(args, stack, gateway, 3 if smoke else 20)
        demo_users = results["demo"]["user_ids"]
        results["hot_key"] = hot_key(args, stack, gateway, token, demo_users[0], demo_users[1:7], 12 if smoke else 120)
        h = results["hot_key"]
        log(f"  hot key: {h['burst']} orders of one user in flight; the others' orders settled within "
            f"{h['others_max_s']:.2f} s (p50 {h['others_p50_s']:.2f} s)")
        stack.stop("payment-service")
        stack.start("payment-service")
        log(f"  last welcome order settled {results['demo']['last_settled_after_last_201_s']:.2f} s after the last 201")

        log("Sign-up burst: 80/s for 10 s, no retries")
        sampler.step = "sign-up burst"
        results["signup_burst"] = signup_burst(args, stack, gateway, 80, 1 if smoke else 10)
        sb = results["signup_burst"]
        log(f"  {sb['created_201']} × 201, {sb['refused_503']} × 503; exactly one welcome order each: {sb['exactly_one_each']}")

        log("Write path's limit: pgbench running order-service's insert statement")
        sampler.step = "pgbench write"
        results["pgbench_write"] = pgbench_write(args, duration, connections)

        sampler.step = "order flood"
        results["flood"] = flood_step(args, stack, gateway, token, 5 if smoke else 50, 1 if smoke else 15, connections)

        # After the flood has settled: the hop's writes start tens of thousands of orders down
        # the chain, which would otherwise still be settling when the flood begins.
        results["gateway_hop"] = hop_step(args, stack, sampler, gateway, token, admin_id, smoke)
        results["read_pgbench_select"] = median_runs([pgbench_read(args, duration) for _ in range(repeats)])

        log("Broker limits again, on the platform's broker as the flood and the hop left it (services stopped)")
        # The services would still be working through the flood's backlog: stopped, the
        # figures are the store's effect on the broker, not the two competing.
        stack.stop_all()
        results["broker_after_flood"] = broker_limits(args.brokers, f"{stack.prefix}after.",
                                                      500 if smoke else 5000, 50 if smoke else 500)
        b = results["broker_after_flood"]
        log(f"  produce pipelined {b['pipelined_produce_per_s']:.0f}/s, serial {b['serial_produce_per_s']:.0f}/s; "
            f"consume {b['consume_per_s']:.0f}/s")
    finally:
        sampler.done.set()
        stack.stop_all()
        stack.drop_databases()
    results["peak_rss_mib"] = sampler.peaks
    results["slow_to_stop"] = stack.slow_stops
    write_report(args, results)


def verdict(ok):
    return "PASS" if ok else "FAIL"


SOAK_HEADING = "## Soak"


def report_section(text, heading):
    """The section of a markdown report that starts at the line `heading` and runs to the
    next heading of the same level (or the end); "" when absent."""
    lines = text.splitlines(keepends=True)
    level = heading.split(" ")[0] + " "
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(level)), len(lines))
    return "".join(lines[start:end])


def replace_report_section(path, heading, section):
    """Writes `section` into the report at `path` in place of its `heading` section, or at
    its end; the rest of the report stays as it was."""
    text = open(path).read() if os.path.exists(path) else ""
    old = report_section(text, heading)
    section = section.rstrip("\n") + "\n"
    if not old:
        text = text.rstrip("\n") + "\n\n" + section
    elif text.endswith(old):
        text = text[:len(text) - len(old)] + section
    else:  # another section follows: keep a blank line before it
        text = text.replace(old, section + "\n", 1)
    with open(path, "w") as out:
        out.write(text)


def idle_rss_measured(r):
    """The idle RSS budget's figure: the largest service's, and what it is made of."""
    largest = max(r["idle_rss_mib"], key=r["idle_rss_mib"].get)
    measured = f"max {r['idle_rss_mib'][largest]:.1f} MiB"
    if split := r.get("idle_rss_parts_mib", {}).get(largest):
        measured += f" ({largest}: {split['anonymous']:.1f} anonymous, {split['files']:.1f} mapped files)"
    return measured


def write_report(args, r):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as out:
        json.dump(r, out, indent=2)
    hop, broker, flood = r["hop"], r["broker"], r["flood"]
    gateway_peak = r["peak_rss_mib"].get("gateway hop", {}).get("api-gateway", 0)
    hop_lines, hop_budgets = gateway_hop.report(r["gateway_hop"], r["gateway_hop"]["pgbench_write"], gateway_peak,
                                                r["flood"])
    hop_lines.append("")
    backlog, hot = broker["backlog_drain"], r["hot_key"]
    hot_slowest = "—" if hot["others_max_s"] is None else f"{hot['others_max_s']:.2f}"
    chain, demo, burst, pgw = r["order_chain"], r["demo"], r["signup_burst"], r["pgbench_write"]
    connections = r["settings"]["wrk_connections"]
    write16 = r["gateway_hop"]["write"][str(connections)]
    pgw_beside = r["gateway_hop"]["pgbench_write"]
    settle_ratio = flood["settle_per_s"] / flood["accept_per_s"] if flood["accept_per_s"] else 0
    drain = flood["last_settled_after_flood_end_s"]
    demo_drain = demo["last_settled_after_last_201_s"]
    peak_all = max(max(step.values()) for step in r["peak_rss_mib"].values())
    settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items())
    lines = [
        "# Benchmark report", "",
        f"Run {r['when']} on {r['machine']}, mode `{r['mode']}` ({settings}). Each figure stands beside its "
        "limit measured in the same run. Raw numbers: `results.json`.", "",
        "## Broker limits (this run, same broker build, on an empty store of its own)", "",
        "| pipelined produce msg/s | serial produce msg/s (ack before next) | one consumer msg/s | backlog drain msg/s, services' fetch size |",
        "|---|---|---|---|",
        f"| {broker['pipelined_produce_per_s']:.0f} | {broker['serial_produce_per_s']:.0f} | {broker['consume_per_s']:.0f} | "
        f"{backlog['per_s']:.0f} ({backlog['records']} records, {backlog['fetch_max_bytes']} bytes a fetch) |", "",
        "## Order flood: `POST /api/orders` at full speed across 50 users (payment delay 0)", "",
        "| duration s | accepted /s | settled /s | settled ÷ accepted | last settled after flood end (s) | still pending | errors |",
        "|---|---|---|---|---|---|---|",
        f"| {flood['duration_s']} | {flood['accept_per_s']:.0f} | {flood['settle_per_s']:.0f} | {settle_ratio:.2f} | "
        f"{'—' if drain is None else f'{drain:.2f}'} | {flood['still_pending']} of {flood['placed']} | {flood['errors']:.0f} |", "",
        "order-service admits new orders while fewer than `ORDER_ADMISSION_MAX_PENDING` (default 500) await their payment, "
        "so the accepted rate is the pace the event chain keeps, and the flood's p50 and p99 include the wait for a place: "
        f"{flood['p50_ms']:.1f} and {flood['p99_ms']:.1f} ms.", "",
        "The same broker's own limits at the end of the run, with the services stopped, on the store the flood and the gateway hop's writes left (its sqlite engine slows as "
        "the store grows): pipelined produce "
        f"{r['broker_after_flood']['pipelined_produce_per_s']:.0f} msg/s, serial {r['broker_after_flood']['serial_produce_per_s']:.0f} msg/s, "
        f"one consumer {r['broker_after_flood']['consume_per_s']:.0f} msg/s; on an empty store: "
        f"{broker['pipelined_produce_per_s']:.0f}, {broker['serial_produce_per_s']:.0f} and {broker['consume_per_s']:.0f}. "
        "Each settled order costs the broker two produced and two consumed messages.", "",
        "Where a settlement's time goes (means over the flood and its drain, ms): "
        + ", ".join(f"{what} {'—' if ms is None else f'{ms:.1f}'}" for what, ms in flood["chain_mean_ms"].items())
        + f". Each user's events are handled one after another, so with {flood['users']} users the chain carries at most "
        "about users ÷ (time per event) settlements per second.", "",
        "CPU cores used from the flood's start to the last settlement: "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in flood["cpu_cores_used"].items()) + ". "
        "CPU µs a settled order, from its request to its settlement: "
        + ", ".join(f"{name} {us:.0f}" for name, us in flood.get("cpu_us_per_settled_order", {}).items()) + ".", "",
        "## Write path: `POST /api/orders` beside PostgreSQL running its statement", "",
        "| | req/s | p50 ms | p99 ms |", "|---|---|---|---|",
        f"| through the gateway (the hop's writes at {connections}) | {write16['gateway']['rps']:.0f} | "
        f"{write16['gateway']['p50_ms']:.2f} | {write16['gateway']['p99_ms']:.2f} |",
        f"| straight to order-service (the hop's writes at {connections}) | {write16['direct']['rps']:.0f} | "
        f"{write16['direct']['p50_ms']:.2f} | {write16['direct']['p99_ms']:.2f} |",
        f"| `pgbench` of the same statement, right after those writes | {pgw_beside['tps']:.0f} | "
        f"avg {pgw_beside['latency_avg_ms']:.2f} | |",
        f"| `pgbench` of the same statement on a quiet machine, before the flood | {pgw['tps']:.0f} | "
        f"avg {pgw['latency_avg_ms']:.2f} | |", "",
        "Round trips per order: one statement (order, lines and outbox row), no explicit transaction. The writes "
        "are the gateway's hop, where order-service runs with admission unbounded (in the flood, admission holds "
        "the writes to the event chain's pace, which is what the flood measures). The budget compares order-service "
        "with the `pgbench` run right after its writes, which shares the machine with the chain working through "
        "the orders those writes started, as the writes did; the quiet run is the statement's cost with nothing "
        "beside it, which no order reaches while its chain runs on the same cores (see the gateway's hop).", "",
        "## Chain latency: order → paid at 10 orders/s (two hops)", "",
        f"One produce → consume hop on the same broker: p50 {hop['p50_ms']:.2f} ms, p99 {hop['p99_ms']:.2f} ms ({hop['samples']} hops).", "",
        "| orders | settled | stored → paid p50 ms | p99 ms | client's send → paid p50 ms | p99 ms |", "|---|---|---|---|---|---|",
        f"| {chain['orders']} | {chain['settled']} | {chain['p50_ms']:.1f} | {chain['p99_ms']:.1f} | "
        f"{chain.get('from_send_p50_ms', float('nan')):.1f} | {chain.get('from_send_p99_ms', float('nan')):.1f} |", "",
        "Stored → paid is the event chain: the outbox relay, `order.created`, the payment, `payment.completed` and "
        "the status change; the second pair adds the HTTP request through the gateway.", "",
        *chain_stage_lines(chain),
        "## Demo settings: 20 sign-ups at once, 1 s simulated payment", "",
        f"{demo['settled']} of {demo['users']} welcome orders settled; the last one "
        f"{'—' if demo_drain is None else f'{demo_drain:.2f}'} s after the last 201.", "",
        f"Hot key: {hot['burst']} orders of one user at once (about {hot['burst']} s of payments in one key's lane), then "
        f"one order each of {hot['others']} other users: {hot['others_settled']} settled, the slowest "
        f"{hot_slowest} s after its 201.", "",
        "## Sign-up burst: 80/s for 10 s, no retries", "",
        "| sent | 201 | 503 | other status or no answer in 10 s | welcome orders | exactly one per 201 user | user-service peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
        f"| {burst['sent']} | {burst['created_201']} | {burst['refused_503']} | {burst['other_or_no_answer']} | {burst['welcome_orders']} | "
        f"{'yes' if burst['exactly_one_each'] else 'NO'} | {r['peak_rss_mib'].get('sign-up burst', {}).get('user-service', 0):.1f} |", "",
        *hop_lines,
        f"PostgreSQL's primary-key select (`pgbench -S`, 16 clients) in the same run: {r['read_pgbench_select']['tps']:.0f} tps "
        f"(avg {r['read_pgbench_select']['latency_avg_ms']:.2f} ms).", "",
        "## Footprint: peak RSS (MiB) per step", "",
        "| step | " + " | ".join(SERVICES) + " |", "|---|" + "---|" * len(SERVICES),
    ]
    for step, peaks in r["peak_rss_mib"].items():
        lines.append(f"| {step} | " + " | ".join(f"{peaks.get(s, 0):.1f}" for s in SERVICES) + " |")
    if r.get("slow_to_stop"):
        lines += ["", f"Did not stop within 30 s of SIGTERM at the end (killed): {', '.join(r['slow_to_stop'])}."]
    idle_cpu = r.get("idle_cpu_cores", {})
    parts = r.get("idle_rss_parts_mib", {})
    lines += ["", "| service | start → ready s | idle RSS MiB | of it anonymous / mapped files | share of a core at rest |",
              "|---|---|---|---|---|"]
    for service in SERVICES:
        split = parts.get(service)
        split = f"{split['anonymous']:.1f} / {split['files']:.1f}" if split else ""
        lines.append(f"| {service} | {r['start_to_ready_s'][service]:.3f} | {r['idle_rss_mib'][service]:.1f} | {split} "
                     f"| {idle_cpu.get(service, 0):.3f} |")
    if "broker (nisshi)" in idle_cpu:
        lines.append(f"| broker (nisshi) | | | | {idle_cpu['broker (nisshi)']:.3f} |")
    if parts:
        lines += ["", "Mapped files are the pages of each binary and its libraries the process has touched (the "
                  "kernel maps some of their neighbours too), shared with every process that maps the same files; "
                  "anonymous memory is the process's own."]
    hot_max = hot["others_max_s"]
    budgets = [
        ("one consumer drains a backlog at ≥ 10 000 msg/s (services' fetch size)",
         backlog["per_s"] >= BUDGETS["backlog_drain_per_s"], f"{backlog['per_s']:.0f} msg/s"),
        ("hot key: other users' orders settle ≤ 5 s while one user's 120 are in flight",
         hot_max is not None and hot["others_settled"] == hot["others"] and hot_max <= BUDGETS["hot_key_others_s"],
         "—" if hot_max is None else f"max {hot_max:.2f} s"),
        ("flood: settled ÷ accepted ≥ 0.9", settle_ratio >= BUDGETS["settle_over_accept"], f"{settle_ratio:.2f}"),
        ("flood: last settled ≤ 2 s after it ends", drain is not None and drain <= BUDGETS["flood_drain_s"],
         "never" if drain is None else f"{drain:.2f} s"),
        ("demo settings: all settled ≤ 1.5 s after the last 201",
         demo_drain is not None and demo["settled"] == demo["users"] and demo_drain <= BUDGETS["demo_drain_s"],
         "—" if demo_drain is None else f"{demo_drain:.2f} s"),
        ("chain p50 (order stored → paid) ≤ 2 × hop p50 + 5 ms",
         chain["p50_ms"] <= 2 * hop["p50_ms"] + BUDGETS["order_chain_margin_ms"],
         f"{chain['p50_ms']:.1f} ms vs {2 * hop['p50_ms'] + BUDGETS['order_chain_margin_ms']:.1f} ms"),
        ("peak RSS of every service ≤ 64 MiB in every step", peak_all <= BUDGETS["load_rss_mib"], f"max {peak_all:.1f} MiB"),
        ("sign-up burst: every 201 user has exactly one welcome order", burst["exactly_one_each"],
         f"{burst['welcome_orders']} for {burst['created_201']}"),
        ("each service idle RSS ≤ 20 MiB", max(r["idle_rss_mib"].values()) <= BUDGETS["idle_rss_mib"], idle_rss_measured(r)),
        ("each service start → ready ≤ 0.5 s", max(r["start_to_ready_s"].values()) <= BUDGETS["start_to_ready_s"], f"max {max(r['start_to_ready_s'].values()):.3f} s"),
        *hop_budgets,
        ("no errors under load", gateway_hop.errors(r["gateway_hop"]) + flood["errors"] == 0,
         f"{gateway_hop.errors(r['gateway_hop']) + flood['errors']:.0f}"),
    ]
    lines += ["", "## Budgets", "", "| budget | verdict | measured |", "|---|---|---|"]
    lines += [f"| {name} | {verdict(ok)} | {measured} |" for name, ok, measured in budgets]
    if r["mode"] == "smoke":
        lines += ["", "_Smoke run: debug build, one-second runs. These numbers prove the harness works and mean nothing else._"]
    path = os.path.join(args.out, "report.md")
    previous = open(path).read() if os.path.exists(path) else ""
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
    # The soak (bench/soak.py, make soak) keeps its section in the same report.
    if soak := report_section(previous, SOAK_HEADING):
        replace_report_section(path, SOAK_HEADING, soak)
    log(f"Wrote {args.out}/report.md and results.json")
    print("\n".join(lines[-(len(budgets) + 4):]))


if __name__ == "__main__":
    main()
