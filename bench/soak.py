#!/usr/bin/env python3
"""The soak (make soak, run by bench/soak.sh): SOAK_MINUTES of steady mixed load through the
gateway of a release build, sampling every 10 s, then the "## Soak" section of
bench/report.md (the rest of the report is kept).

Load, each paced at a fixed rate by harness.paced (see main() for the defaults and why):
sign-ups (POST /api/auth/register, argon2), orders (POST /api/orders by the users
themselves), cancellations (DELETE /api/orders/{id} right after every Nth order's 201),
reads (GET of an own order, the own order list, the own profile).

Isolated from everyone else on the machine: the four services on their own ports
(4001-4003, 4005 by default), their own databases (soak_users_<stamp>, soak_orders_<stamp>,
soak_payments_<stamp>, dropped at the end) and a broker of their own (bench/soak.sh starts it empty on 19096,
with a short maintenance interval); the services run with a short KAFKA_RETENTION_MS so
that retention trims the broker's store within the run.

Every 10 s: each service's and the broker's RSS and CPU, the size of the broker's sqlite
files, the records each topic holds (ListOffsets: latest - earliest, summed over
partitions) and has ever received (latest), and the orders still pending. After the load:
a wait (with a deadline) until every order settled, then the checks and the verdicts.
Raw samples go to --raw (outside the work tree).
"""
import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "infra" / "scripts"))
from harness import (ORDER_BODY_ITEMS, SOAK_HEADING, Stack, cpu_seconds, http, log, paced,  # noqa: E402
                     psql, replace_report_section, rss_mib, verdict)
from kafka_check import connect  # noqa: E402
from kafka_wire import offsets, topic_partitions  # noqa: E402

SOAK_PORTS = {"user-service": 4001, "order-service": 4002, "payment-service": 4003, "api-gateway": 4005}
# shared/contracts/src/events.rs ALL_TOPICS; each also has its `<topic>.dlq`.
BASE_TOPICS = ("user.created", "user.deleted", "order.created", "order.cancelled", "payment.completed",
               "payment.refunded")
SAMPLE_EVERY_S = 10
FINAL = ("paid", "payment_failed", "cancelled", "refunded")
# What a cancellation answered 204 leaves: `cancelled`, or `refunded` once payment-service
# gave back a payment it had already taken.
CANCELLED = ("cancelled", "refunded")
BUDGETS = {"rss_flat": 0.10, "p50_drift": 0.20, "store_file_growth": 0.10, "store_records_growth": 0.25}


def p(values, q):
    """The q-quantile (0..1) of a list, nearest rank; None when empty."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values) + 0.5)) - 1))]


def fmt(value, spec=".1f", none="—"):
    return none if value is None else format(value, spec)


class Traffic:
    """The load's bookkeeping: every request's outcome, the users and their orders."""

    def __init__(self, gateway, start):
        self.gateway, self.start = gateway, start
        self.lock = threading.Lock()
        self.requests = []  # (kind, seconds since start, latency ms, ok)
        self.errors = {}  # kind -> count
        self.error_examples = []
        self.users = []  # ready for orders: order-service knows them (welcome order seen)
        self.waiting_users = {}  # signed up, welcome order not seen yet: id -> token
        self.signed_up = 0
        self.orders = {}  # id -> {"sent": epoch s, "user": id, "cancel": status or None}
        self.orders_of = {}  # user id -> [order ids]

    def call(self, kind, method, path, expected, body=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sent = time.time()
        try:
            status, answer = http(method, f"{self.gateway}{path}", body, headers)
        except OSError as error:  # refused, reset, or no answer within 10 s
            status, answer = None, str(error).encode()
        latency = (time.time() - sent) * 1000
        ok = status in expected
        with self.lock:
            self.requests.append((kind, sent - self.start, latency, ok))
            if not ok:
                self.errors[kind] = self.errors.get(kind, 0) + 1
                if len(self.error_examples) < 10:
                    self.error_examples.append(f"{kind} {method} {path}: {status} {answer[:160]!r}")
        return status, answer, sent

    def signup(self, _i):
        email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
        status, body, _ = self.call("sign-up", "POST", "/api/auth/register", {201},
                                    {"email": email, "name": "Soak User", "password": "SecurePass123!"})
        if status == 201:
            answer = json.loads(body)
            with self.lock:
                self.waiting_users[answer["user"]["id"]] = answer["access_token"]
                self.signed_up += 1

    def user(self):
        with self.lock:
            return random.choice(self.users)

    def order(self, i, cancel_every):
        user_id, token = self.user()
        status, body, sent = self.call("order", "POST", "/api/orders", {201},
                                       {"userId": user_id, "items": ORDER_BODY_ITEMS}, token)
        if status != 201:
            return
        order_id = json.loads(body)["id"]
        with self.lock:
            self.orders[order_id] = {"sent": sent, "user": user_id, "cancel": None}
            self.orders_of.setdefault(user_id, []).append(order_id)
        if cancel_every and i % cancel_every == 0:
            # 409 when the payment settled it first: then it must have ended paid or failed
            # (checked after the run); anything else is an error.
            status, _, _ = self.call("cancel", "DELETE", f"/api/orders/{order_id}", {204, 409}, token=token)
            with self.lock:
                self.orders[order_id]["cancel"] = status

    def read(self, i):
        user_id, token = self.user()
        with self.lock:
            own = self.orders_of.get(user_id, [])
            order_id = own[-1] if own else None
        if i % 3 == 0 and order_id:
            self.call("read", "GET", f"/api/orders/{order_id}", {200}, token=token)
        elif i % 3 == 1:
            self.call("read", "GET", f"/api/orders?userId={user_id}&limit=20", {200}, token=token)
        else:
            self.call("read", "GET", f"/api/users/{user_id}", {200}, token=token)

    def admit_known_users(self, args, stack):
        """Moves signed-up users whose welcome order exists into the pool that orders and reads use."""
        with self.lock:
            waiting = len(self.waiting_users)
        if not waiting:
            return
        known = set(psql(args.database_url, "SELECT user_id FROM orders WHERE kind = 'welcome'", stack.order_db).split())
        with self.lock:
            for user_id in [u for u in self.waiting_users if u in known]:
                self.users.append((user_id, self.waiting_users.pop(user_id)))


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY_S seconds from the start: RSS and CPU of each process, the broker's
    store, the orders still pending; also lets newly known users into the pool."""

    def __init__(self, args, stack, traffic, broker_pid):
        super().__init__(daemon=True)
        self.args, self.stack, self.traffic, self.broker_pid = args, stack, traffic, broker_pid
        self.samples, self.problems, self.done = [], [], threading.Event()
        self.pids = {s: proc.pid for s, proc in stack.processes.items()}
        self.pids["broker (nisshi)"] = broker_pid
        self.phase = "load"

    def store_bytes(self):
        return sum(f.stat().st_size for f in Path(self.args.store_dir).glob("nisshi.db*"))

    def topic_records(self):
        host, port = self.args.brokers.rsplit(":", 1)
        conn = connect(host, int(port), 10)
        try:
            partitions = topic_partitions(conn)
            held, received = {}, {}
            for base in BASE_TOPICS:
                for topic in (f"{self.stack.prefix}{base}", f"{self.stack.prefix}{base}.dlq"):
                    held[topic] = received[topic] = 0
                    for partition in range(partitions.get(topic, 0)):
                        earliest, latest = offsets(conn, topic, partition)
                        held[topic] += max(0, latest - earliest)
                        received[topic] += latest
            return held, received
        finally:
            conn.close()

    def sample(self):
        t = time.time() - self.traffic.start
        row = {"t": round(t, 1), "phase": self.phase, "rss_mib": {}, "cpu_s": {},
               "machine_cpu_s": machine_cpu_seconds(), "load_generator_cpu_s": sum(os.times()[:2])}
        for name, pid in self.pids.items():
            try:
                row["rss_mib"][name] = round(rss_mib(pid), 2)
                row["cpu_s"][name] = cpu_seconds(pid)
            except OSError:
                row["rss_mib"][name] = row["cpu_s"][name] = None
        row["store_bytes"] = self.store_bytes()
        try:
            row["records_held"], row["records_received"] = self.topic_records()
        except Exception as error:  # noqa: BLE001 - a broker slow to answer is a finding, not a crash
            row["records_held"] = row["records_received"] = None
            self.problems.append(f"t={t:.0f} s: ListOffsets failed: {error}")
        row["pending_orders"] = int(psql(self.args.database_url, "SELECT count(*) FROM orders WHERE status = 'pending'",
                                         self.stack.order_db))
        self.samples.append(row)
        self.traffic.admit_known_users(self.args, self.stack)

    def run(self):
        tick = 0
        while not self.done.is_set():
            try:
                self.sample()
            except Exception as error:  # noqa: BLE001
                self.problems.append(f"sample failed: {error}")
            tick += 1
            self.done.wait(max(0.0, self.traffic.start + tick * SAMPLE_EVERY_S - time.time()))


def machine_cpu_seconds():
    """CPU seconds every core of the machine has been busy (all but idle and iowait), so far."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def ports_free(ports):
    for service, port in ports.items():
        try:
            http("GET", f"http://127.0.0.1:{port}/health/live", timeout=1)
        except OSError:
            continue
        sys.exit(f"port {port} (for the soak's {service}) is taken; stop what listens there or change --port-base")


def seed_users(traffic, args, stack, count):
    """`count` users signed up before the clock starts, known to order-service."""
    threads = [threading.Thread(target=traffic.signup, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
        time.sleep(1 / 20)  # below the hashing capacity: no 503
    for thread in threads:
        thread.join()
    deadline = time.time() + 60
    while len(traffic.users) < count and time.time() < deadline:
        traffic.admit_known_users(args, stack)
        time.sleep(0.2)
    if len(traffic.users) < count:
        sys.exit(f"only {len(traffic.users)} of {count} seed users got their welcome order within 60 s")
    # The seed's requests are not part of the soak.
    traffic.requests.clear()
    traffic.errors.clear()
    traffic.signed_up = 0


def wait_settled(args, stack, deadline_s):
    """Polls until no order is pending and every user has a welcome order; returns the seconds waited."""
    started = time.time()
    while True:
        pending = int(psql(args.database_url, "SELECT count(*) FROM orders WHERE status = 'pending'", stack.order_db))
        users = int(psql(args.database_url, "SELECT count(*) FROM users", stack.user_db))
        welcome = int(psql(args.database_url, "SELECT count(*) FROM orders WHERE kind = 'welcome'", stack.order_db))
        if (pending == 0 and welcome >= users) or time.time() - started > deadline_s:
            return time.time() - started
        time.sleep(0.5)


def settlement(args, stack, traffic):
    """What became of every order and every user."""
    rows = psql(args.database_url, "SELECT id, kind, status, user_id, EXTRACT(EPOCH FROM created_at), "
                "EXTRACT(EPOCH FROM updated_at) FROM orders", stack.order_db)
    orders = {}
    for line in rows.splitlines():
        order_id, kind, status, user_id, created, updated = line.split("|")
        orders[order_id] = {"kind": kind, "status": status, "user": user_id, "created": float(created), "updated": float(updated)}
    users = set(psql(args.database_url, "SELECT id FROM users", stack.user_db).split())
    placed = traffic.orders
    by_status = {}
    for order_id in placed:
        status = orders.get(order_id, {}).get("status", "missing")
        by_status[status] = by_status.get(status, 0) + 1
    cancelled_204 = [o for o, v in placed.items() if v["cancel"] == 204]
    refused_409 = [o for o, v in placed.items() if v["cancel"] == 409]
    welcome = [o for o in orders.values() if o["kind"] == "welcome"]
    welcome_users = [o["user"] for o in welcome]
    standard_unknown = [o for o, v in orders.items() if v["kind"] == "standard" and o not in placed]
    return {
        "orders_placed": len(placed),
        "orders_by_status": by_status,
        "orders_not_final": sum(n for s, n in by_status.items() if s not in FINAL),
        "cancel_204": len(cancelled_204),
        "cancel_204_not_cancelled": sum(orders.get(o, {}).get("status") not in CANCELLED for o in cancelled_204),
        "cancel_409": len(refused_409),
        "cancel_409_not_settled": sum(orders.get(o, {}).get("status") not in ("paid", "payment_failed") for o in refused_409),
        "orders_not_placed_by_the_soak": len(standard_unknown),
        "users": len(users),
        "users_with_welcome_order": len(set(welcome_users) & users),
        "welcome_orders": len(welcome),
        "welcome_duplicates": len(welcome_users) - len(set(welcome_users)),
        "welcome_not_final": sum(o["status"] not in ("paid", "payment_failed") for o in welcome),
    }, orders


def chain_by_minute(traffic, orders, minutes):
    """Per minute of the load (by the order's storing): settled orders, stored → settled p50/p99,
    and client's send → settled p50 (orders the soak placed that were paid or failed)."""
    rows = []
    for minute in range(minutes):
        lo, hi = traffic.start + minute * 60, traffic.start + (minute + 1) * 60
        chain, from_send = [], []
        for order_id, placed in traffic.orders.items():
            order = orders.get(order_id)
            if order and order["status"] in ("paid", "payment_failed") and lo <= order["created"] < hi:
                chain.append((order["updated"] - order["created"]) * 1000)
                from_send.append((order["updated"] - placed["sent"]) * 1000)
        rows.append({"minute": minute + 1, "settled": len(chain), "p50_ms": p(chain, 0.5), "p99_ms": p(chain, 0.99),
                     "from_send_p50_ms": p(from_send, 0.5)})
    return rows


def log_levels(stack):
    counts, examples = {}, []
    for service in SOAK_PORTS:
        path = Path(stack.logs) / f"{service}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                level = json.loads(line).get("level", "?")
            except ValueError:
                level = "unparsed"
            key = f"{service} {level}"
            counts[key] = counts.get(key, 0) + 1
            if level in ("ERROR", "unparsed") and len(examples) < 5:
                examples.append(f"{service}: {line[:240]}")
    return counts, examples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--brokers", required=True, help="the soak's own broker, host:port")
    parser.add_argument("--broker-pid-file", required=True)
    parser.add_argument("--store-dir", required=True, help="the soak broker's data folder (nisshi.db)")
    parser.add_argument("--maintenance-interval", required=True, help="the soak broker's, for the report")
    parser.add_argument("--build", default="release", help="the build's profile, for the report")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--retention-ms", type=int, default=20000)
    # Rates (see the report's text for why these): about half of what this machine settles.
    parser.add_argument("--signups-per-s", type=float, default=5)
    parser.add_argument("--orders-per-s", type=float, default=15)
    parser.add_argument("--cancel-every", type=int, default=5, help="cancel every Nth order right after its 201")
    parser.add_argument("--reads-per-s", type=float, default=50)
    parser.add_argument("--seed-users", type=int, default=50)
    parser.add_argument("--drain-s", type=float, default=180, help="longest wait for settlement after the load")
    parser.add_argument("--report", required=True)
    parser.add_argument("--raw", required=True, help="raw samples (JSON), outside the work tree")
    parser.add_argument("--render-only", action="store_true",
                        help="write the report's section from an earlier run's --raw file, without running anything")
    args = parser.parse_args()
    if args.render_only:
        with open(args.raw) as raw:
            section, passed = soak_section(json.load(raw))
        replace_report_section(args.report, SOAK_HEADING, section)
        print(section)
        return 0 if passed else 1

    ports_free(SOAK_PORTS)
    stack = Stack(args, name="soak", ports=SOAK_PORTS)
    broker_pid = int(open(args.broker_pid_file).read())
    service_env = {"KAFKA_RETENTION_MS": str(args.retention_ms)}
    duration = int(args.minutes * 60)
    results = {"when": datetime.now(timezone.utc).isoformat(), "machine": f"{os.cpu_count()} cores", "minutes": args.minutes,
               "build": args.build, "default_rates": all(parser.get_default(k) == getattr(args, k) for k in RATE_OPTIONS),
               "settings": {"retention_ms": args.retention_ms, "maintenance_interval": args.maintenance_interval,
                            "brokers": args.brokers, "ports": SOAK_PORTS, "signups_per_s": args.signups_per_s,
                            "orders_per_s": args.orders_per_s, "cancel_every": args.cancel_every,
                            "reads_per_s": args.reads_per_s, "seed_users": args.seed_users,
                            "payment_delay_ms": 0, "payment_failure_rate": 0.1}}
    stack.create_databases()
    sampler = None
    try:
        log(f"Starting the services on ports {', '.join(map(str, SOAK_PORTS.values()))} (broker {args.brokers}, "
            f"KAFKA_RETENTION_MS={args.retention_ms}, databases {', '.join(stack.databases.values())})")
        for service in SOAK_PORTS:
            extra = dict(service_env)
            if service == "payment-service":
                extra["PAYMENT_FAILURE_RATE"] = "0.1"
            stack.start(service, extra)
        gateway = f"http://127.0.0.1:{SOAK_PORTS['api-gateway']}"
        traffic = Traffic(gateway, time.time())
        log(f"Seeding {args.seed_users} users")
        seed_users(traffic, args, stack, args.seed_users)

        log(f"Soak: {args.minutes:g} min of sign-ups {args.signups_per_s:g}/s, orders {args.orders_per_s:g}/s "
            f"(every {args.cancel_every}th cancelled at once), reads {args.reads_per_s:g}/s")
        traffic.start = time.time()
        sampler = Sampler(args, stack, traffic, broker_pid)
        sampler.start()
        streams = [(args.signups_per_s, traffic.signup), (args.orders_per_s, lambda i: traffic.order(i, args.cancel_every)),
                   (args.reads_per_s, traffic.read)]
        threads = [threading.Thread(target=paced, args=(rate, duration, one)) for rate, one in streams if rate > 0]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(5)
            if sampler.samples and int(time.time() - traffic.start) % 60 < 5:
                last = sampler.samples[-1]
                log(f"  t={last['t']:.0f} s: RSS " + ", ".join(f"{k} {v}" for k, v in last["rss_mib"].items())
                    + f"; store {last['store_bytes'] / 1e6:.1f} MB; pending {last['pending_orders']}; "
                    f"errors {sum(traffic.errors.values())}")
        load_end = time.time() - traffic.start
        sampler.phase = "drain"
        log("Load over; waiting until every order settled")
        drained = wait_settled(args, stack, args.drain_s)
        sampler.done.set()
        sampler.join()
        sampler.done.clear()
        sampler.phase = "end"
        sampler.sample()
        results["load_s"] = load_end
        results["drain_s"] = drained
        results["settlement"], orders = settlement(args, stack, traffic)
    finally:
        if sampler:
            sampler.done.set()
        stack.stop_all()
        stack.drop_databases()
    results["slow_to_stop"] = stack.slow_stops
    results["log_lines"], results["log_examples"] = log_levels(stack)
    results["samples"] = sampler.samples
    results["sampling_problems"] = sampler.problems
    results["chain_by_minute"] = chain_by_minute(traffic, orders, max(1, int(round(duration / 60))))
    results["requests"] = summarize_requests(traffic, duration)
    results["errors"] = dict(traffic.errors)
    results["error_examples"] = traffic.error_examples
    results["signed_up"] = traffic.signed_up
    os.makedirs(os.path.dirname(args.raw), exist_ok=True)
    with open(args.raw, "w") as out:
        json.dump(results, out, indent=1)
    section, passed = soak_section(results)
    replace_report_section(args.report, SOAK_HEADING, section)
    print(section)
    log(f"Wrote the Soak section of {args.report}; raw samples in {args.raw}, the services' logs in {stack.logs}")
    return 0 if passed else 1


def summarize_requests(traffic, duration):
    kinds = {}
    last_minute = max(0, duration - 60)
    for kind, t, latency, ok in traffic.requests:
        k = kinds.setdefault(kind, {"sent": 0, "ok": 0, "all": [], "first": [], "last": []})
        k["sent"] += 1
        k["ok"] += ok
        k["all"].append(latency)
        if t < 60:
            k["first"].append(latency)
        if t >= last_minute:
            k["last"].append(latency)
    return {kind: {"sent": k["sent"], "ok": k["ok"], "rate_per_s": k["sent"] / duration if duration else 0,
                   "p50_ms": p(k["all"], 0.5), "p99_ms": p(k["all"], 0.99),
                   "first_minute_p50_ms": p(k["first"], 0.5), "last_minute_p50_ms": p(k["last"], 0.5)}
            for kind, k in kinds.items()}


def at(samples, t):
    """The first sample taken at or after t seconds (a second of slack)."""
    return next((s for s in samples if s["t"] >= t - 1), None)


def soak_section(r):
    s, samples = r["settings"], [x for x in r["samples"] if x["phase"] == "load"]
    minutes = r["minutes"]
    services = list(SOAK_PORTS) + ["broker (nisshi)"]
    load_end = r["load_s"]
    lines = [SOAK_HEADING, "",
             f"Run {r['when']} on {r['machine']}: `make soak`, {minutes:g} minute{'s' if minutes != 1 else ''} of steady "
             f"mixed load through the gateway of the {r['build']} build, then a wait for settlement ({r['drain_s']:.1f} s). Its own instances on "
             f"ports {', '.join(str(v) for v in s['ports'].values())}, its own databases (dropped afterwards) and its own "
             f"empty nisshi 0.8.1 on {s['brokers']} with storage maintenance every {s['maintenance_interval']}; the services "
             f"ran with `KAFKA_RETENTION_MS={s['retention_ms']}` (so retention trims the store from the first minute, and minute 1, the latency budget's baseline, is already its steady state) and the "
             f"defaults otherwise (payment delay {s['payment_delay_ms']} ms, failure rate {s['payment_failure_rate']}).", "",
             f"Rates: sign-ups {s['signups_per_s']:g}/s, orders {s['orders_per_s']:g}/s (every {s['cancel_every']}th "
             f"cancelled by its owner right after the 201), reads {s['reads_per_s']:g}/s (an own order, the own order list, "
             f"the own profile, in turn), over {s['seed_users']} seeded users and everyone who signed up since. "
             + (RATE_REASONING if r["default_rates"] else "(Rates set by the caller, not the defaults.)"), ""]
    # Requests.
    lines += ["### Requests", "", "| kind | sent | rate /s | as expected | errors | p50 ms | p99 ms | p50 minute 1 | p50 last minute |",
              "|---|---|---|---|---|---|---|---|---|"]
    for kind, k in r["requests"].items():
        lines.append(f"| {kind} | {k['sent']} | {k['rate_per_s']:.2f} | {k['ok']} | {k['sent'] - k['ok']} | {fmt(k['p50_ms'])} | "
                     f"{fmt(k['p99_ms'])} | {fmt(k['first_minute_p50_ms'])} | {fmt(k['last_minute_p50_ms'])} |")
    lines += ["", "Expected answers: sign-up 201; order 201; cancel 204, or 409 when the payment settled the order "
              "first (then it must have ended paid or failed, checked below); reads 200. Anything else, or no answer "
              "within 10 s, is an error."]
    if r["error_examples"]:
        lines += ["", "First errors: " + "; ".join(f"`{e}`" for e in r["error_examples"])]
    # Minute table.
    lines += ["", "### Every minute", "",
              "| minute | " + " | ".join(f"{x} RSS MiB" for x in services) + " | store MB | records held | records received "
              "| pending orders | orders settled | order → paid p50 ms | p99 ms | send → paid p50 ms |",
              "|---" * (len(services) + 9) + "|"]
    chain = {row["minute"]: row for row in r["chain_by_minute"]}
    end_sample = next((y for y in r["samples"] if y["phase"] == "end"), None)
    rows = [(minute, at(r["samples"], minute * 60)) for minute in range(int(round(minutes)) + 1)] + [("end", end_sample)]
    for minute, x in rows:
        if not x:
            continue
        held = sum(x["records_held"].values()) if x["records_held"] else None
        received = sum(x["records_received"].values()) if x["records_received"] else None
        c = chain.get(minute, {})
        label = {"load": f"{minute}", "drain": f"{minute} (load over)", "end": "settled"}[x["phase"]]
        lines.append(f"| {label} | " + " | ".join(fmt(x["rss_mib"].get(name)) for name in services)
                     + f" | {x['store_bytes'] / 1e6:.2f} | {fmt(held, 'd')} | {fmt(received, 'd')} | {x['pending_orders']} | "
                     f"{c.get('settled', '—')} | {fmt(c.get('p50_ms'))} | {fmt(c.get('p99_ms'))} | "
                     f"{fmt(c.get('from_send_p50_ms'))} |")
    lines += ["", "Rows are the sample at the start of each minute (RSS, the broker's sqlite files, records held = "
              "latest − earliest offset summed over every partition of the eight topics, records received = latest "
              "offsets, orders pending); the order columns are the orders stored during the minute that ends there "
              "(order → paid: from the order's storing to its settlement, as in the chain latency above)."]
    # RSS every 10 s.
    lines += ["", "### RSS every 10 s (MiB, from t = 0)", ""]
    for name in services:
        lines.append(f"- {name}: " + " ".join(fmt(x["rss_mib"].get(name)) for x in samples))
    lines.append("- broker store (MB): " + " ".join(f"{x['store_bytes'] / 1e6:.1f}" for x in samples))
    lines.append("- records held: " + " ".join(fmt(sum(x["records_held"].values()), "d") if x["records_held"] else "?"
                                               for x in samples))
    # CPU over the load.
    first, last = samples[0], samples[-1]
    span = last["t"] - first["t"]
    if span > 0 and "machine_cpu_s" in first:
        cores = {n: (last["cpu_s"][n] - first["cpu_s"][n]) / span for n in services
                 if last["cpu_s"].get(n) is not None and first["cpu_s"].get(n) is not None}
        generator = (last["load_generator_cpu_s"] - first["load_generator_cpu_s"]) / span
        machine = (last["machine_cpu_s"] - first["machine_cpu_s"]) / span
        others = machine - sum(cores.values()) - generator
        busiest = max(((b["machine_cpu_s"] - a["machine_cpu_s"]) / (b["t"] - a["t"]) -
                       sum((b["cpu_s"][n] or 0) - (a["cpu_s"][n] or 0) for n in services) / (b["t"] - a["t"]) -
                       (b["load_generator_cpu_s"] - a["load_generator_cpu_s"]) / (b["t"] - a["t"]), b["t"])
                      for a, b in zip(samples, samples[1:]) if b["t"] > a["t"])
        lines += ["", "CPU cores used over the load: " + ", ".join(f"{n} {c:.2f}" for n, c in cores.items())
                  + f", the load generator (Python) {generator:.2f}; the whole machine {machine:.2f} of {os.cpu_count()}, so "
                  f"{max(0.0, others):.2f} by other processes (the most in one 10 s interval: {max(0.0, busiest[0]):.2f} cores, "
                  f"ending at t = {busiest[1]:.0f} s)."]
    # Settlement.
    st = r["settlement"]
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(st["orders_by_status"].items()))
    settled_ok = (st["orders_not_final"] == 0 and st["cancel_204_not_cancelled"] == 0 and st["cancel_409_not_settled"] == 0
                  and st["users_with_welcome_order"] == st["users"] and st["welcome_duplicates"] == 0
                  and st["welcome_not_final"] == 0)
    lines += ["", "### Settlement", "",
              f"Orders placed by the soak: {st['orders_placed']} ({by_status}); not final: {st['orders_not_final']}. "
              f"Cancellations: {st['cancel_204']} × 204, every one `cancelled` or `refunded`: {'yes' if not st['cancel_204_not_cancelled'] else 'NO'}; "
              f"{st['cancel_409']} × 409, every one paid or failed: {'yes' if not st['cancel_409_not_settled'] else 'NO'}. "
              f"Users: {st['users']} (the admin, {r['settings']['seed_users']} seeded, {r['signed_up']} signed up during the soak); "
              f"with a welcome order: {st['users_with_welcome_order']}; welcome orders {st['welcome_orders']} "
              f"({st['welcome_duplicates']} duplicates, {st['welcome_not_final']} not final). "
              f"Waited {r['drain_s']:.1f} s after the load for the last settlement."]
    # Errors.
    http_errors = sum(r["errors"].values())
    dead_letters = 0
    end = next((y for y in r["samples"] if y["phase"] == "end"), samples[-1])
    if end["records_received"]:
        dead_letters = sum(v for topic, v in end["records_received"].items() if topic.endswith(".dlq"))
    error_logs = sum(v for k, v in r["log_lines"].items() if k.endswith(" ERROR"))
    warn_logs = {k: v for k, v in r["log_lines"].items() if k.endswith(" WARN")}
    lines += ["", f"Errors: {http_errors} HTTP, {dead_letters} dead letters, {error_logs} ERROR log lines "
              f"(WARN lines: {', '.join(f'{k} {v}' for k, v in warn_logs.items()) or 'none'})."
              + (" Examples: " + "; ".join(f"`{e}`" for e in r["log_examples"]) if r["log_examples"] else "")]
    if r["sampling_problems"]:
        lines += ["", "Sampling problems: " + "; ".join(r["sampling_problems"][:5])]
    if r["slow_to_stop"]:
        lines += ["", f"Did not stop within 30 s of SIGTERM at the end (killed): {', '.join(r['slow_to_stop'])}."]
    # Budgets.
    budgets = []
    window = [x for x in samples if x["t"] >= 120 - 1]
    if window:
        base = window[0]
        worst, worst_name = 0.0, ""
        for name in SOAK_PORTS:
            values = [x["rss_mib"][name] for x in window if x["rss_mib"].get(name)]
            dev = max(abs(v - base["rss_mib"][name]) / base["rss_mib"][name] for v in values)
            if dev >= worst:
                worst, worst_name = dev, name
        rss_detail = (f"largest departure from the minute-2 sample: {worst * 100:.1f} % ({worst_name}); "
                      + ", ".join(f"{n} {base['rss_mib'][n]:.1f} → {window[-1]['rss_mib'][n]:.1f}" for n in SOAK_PORTS))
        budgets.append(("RSS of every service from minute 2 to the end within ±10 % of its minute-2 sample",
                        worst <= BUDGETS["rss_flat"], rss_detail))
    first_minute, last_minute = r["chain_by_minute"][0], r["chain_by_minute"][-1]
    if first_minute["p50_ms"] and last_minute["p50_ms"]:
        drift = last_minute["p50_ms"] / first_minute["p50_ms"] - 1
        budgets.append((f"order → paid p50 in minute {last_minute['minute']} within ±20 % of minute 1",
                        abs(drift) <= BUDGETS["p50_drift"],
                        f"{first_minute['p50_ms']:.1f} ms → {last_minute['p50_ms']:.1f} ms ({drift * 100:+.1f} %)"))
    half = load_end / 2
    mid = at(samples, half)
    trimmed_from = s["retention_ms"] / 1000 + 30  # retention plus a few maintenance passes
    early = [x for x in samples if trimmed_from - 1 <= x["t"] < half and x["records_held"]]
    late = [x for x in samples if x["t"] >= half and x["records_held"]]
    if mid and early and late:
        file_growth = samples[-1]["store_bytes"] / mid["store_bytes"] - 1
        held_early = max(sum(x["records_held"].values()) for x in early)
        held_late = max(sum(x["records_held"].values()) for x in late)
        # A sample whose ListOffsets failed (a broker too busy to answer) has no counts.
        received = [sum(x["records_received"].values()) if x["records_received"] else "?" for x in (mid, samples[-1])]
        budgets.append((f"broker store bounded: sqlite files grow ≤ 10 % over the second half, records held in the "
                        f"second half ≤ 1.25 × their peak from t = {trimmed_from:.0f} s (retention + 30 s) to the half",
                        file_growth <= BUDGETS["store_file_growth"] and held_late <= (1 + BUDGETS["store_records_growth"]) * held_early,
                        f"files {mid['store_bytes'] / 1e6:.2f} → {samples[-1]['store_bytes'] / 1e6:.2f} MB ({file_growth * 100:+.1f} %); "
                        f"records held peak {held_early} → {held_late}, while records received went {received[0]} → {received[1]}"))
    else:
        budgets.append(("broker store bounded", False, f"run too short to judge: the first half ends before retention "
                                                        f"trims (t = {trimmed_from:.0f} s)"))
    budgets.append(("0 errors (HTTP, dead letters, ERROR log lines)", http_errors + dead_letters + error_logs == 0,
                    f"{http_errors} HTTP, {dead_letters} dead letters, {error_logs} ERROR lines"))
    budgets.append(("everything settled (every soak order paid, failed, cancelled or refunded; every user one settled welcome order)",
                    settled_ok, f"{st['orders_not_final']} orders and {st['welcome_not_final']} welcome orders not final; "
                    f"{st['users'] - st['users_with_welcome_order']} users without one"))
    lines += ["", "### Soak budgets", "", "| budget | verdict | measured |", "|---|---|---|"]
    lines += [f"| {name} | {verdict(ok)} | {measured} |" for name, ok, measured in budgets]
    return "\n".join(lines) + "\n", all(ok for _, ok, _ in budgets)


RATE_OPTIONS = ("signups_per_s", "orders_per_s", "cancel_every", "reads_per_s")
# Why the default rates:
RATE_REASONING = (
    "Why these rates: sign-ups are bounded by argon2 (the bench's sign-up burst measures how many), and each one also "
    "sends a welcome order down the event chain, which is the tighter limit: the bench's order flood measures what the "
    "chain settles per second on this machine. The soak runs well below both, 20 settlements/s through the chain "
    "(15 orders and 5 welcome orders), sign-ups at 5/s and 50 reads/s, so that what it shows is drift over time, not "
    "saturation."
)

if __name__ == "__main__":
    sys.exit(main())
