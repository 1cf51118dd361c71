#!/usr/bin/env python3
"""`make test-events`: `make events` shows a sign-up's whole chain as it happens.

Starts `make events --json` against the running native platform, waits until it says
it is following, signs up a fresh user through the gateway and waits for its chain (a
platform just started may still be joining its consumer groups), then signs up another
one and reads what it prints. Passes when, within EVENTS_DEADLINE_SECONDS (2) of the sign-up's 201, it has
printed the three messages of that user's chain (user.created, order.created,
payment.completed, keyed by the user id) and all three carry the sign-up's trace id
and request id. Stops the watcher at the end.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:3005")
DEADLINE = float(os.environ.get("EVENTS_DEADLINE_SECONDS", "2"))
CHAIN = ("user.created", "order.created", "payment.completed")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def pump(stream, into):
    """Each line with the moment it was read."""
    for line in stream:
        into.put((time.monotonic(), line.rstrip("\n")))
    into.put((time.monotonic(), None))


def main():
    watcher = subprocess.Popen(
        ["make", "--no-print-directory", "-C", ROOT, "events", "EVENTS_ARGS=--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = queue.Queue(), queue.Queue()
    threading.Thread(target=pump, args=(watcher.stdout, out), daemon=True).start()
    threading.Thread(target=pump, args=(watcher.stderr, err), daemon=True).start()
    try:
        run(out, err)
    finally:
        os.killpg(watcher.pid, signal.SIGTERM)
        watcher.wait(timeout=10)


def sign_up():
    """Signs a fresh user up through the gateway: (user id, request id, when the 201 came)."""
    request_id = str(uuid.uuid4())
    email = f"events+{uuid.uuid4().hex[:12]}@example.com"
    body = json.dumps({"email": email, "name": "Events Test", "password": "SecurePass123!"}).encode()
    request = urllib.request.Request(f"{GATEWAY}/api/auth/register", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-Request-Id": request_id})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 201:
            fail(f"sign-up answered {response.status}")
        user_id = json.load(response)["user"]["id"]
    print(f"signed up {user_id} (request {request_id})")
    return user_id, request_id, time.monotonic()


def collect(out, user_id, signed_up, deadline):
    """The user's chain messages printed within `deadline` seconds of the sign-up."""
    seen = {}
    while len(seen) < len(CHAIN):
        left = signed_up + deadline - time.monotonic()
        try:
            at, line = out.get(timeout=max(0.0, left))
        except queue.Empty:
            break
        if line is None:
            fail("make events ended early")
        if not line.startswith("{"):
            continue  # what `make` and the broker script print before the tool starts
        message = json.loads(line)
        topic = message["topic"]
        if message.get("key") == user_id and topic in CHAIN and topic not in seen:
            seen[topic] = (at - signed_up, message)
            print(f"  +{at - signed_up:.3f} s {topic} type={message['eventType']} "
                  f"trace={message['traceId']} request={message['requestId']}")
        if at - signed_up > deadline:
            break
    return seen


def run(out, err):
    # The first build of the tool may take a while; then it says when it follows.
    give_up = time.monotonic() + 300
    while True:
        try:
            _, line = err.get(timeout=max(0.0, give_up - time.monotonic()))
        except queue.Empty:
            fail("make events did not start following within 300 s")
        if line is None:
            fail("make events ended before following anything")
        print(f"make events: {line}")
        if line.startswith("following "):
            break

    # A platform just started may still be joining its consumer groups; the first chain
    # through it is the warm-up, waited for with a generous deadline. The second is timed.
    user_id, _, signed_up = sign_up()
    if len(collect(out, user_id, signed_up, 120)) < len(CHAIN):
        fail("the platform did not carry a sign-up's chain within 120 s")
    user_id, request_id, signed_up = sign_up()
    seen = collect(out, user_id, signed_up, DEADLINE)
    missing = [t for t in CHAIN if t not in seen or seen[t][0] > DEADLINE]
    if missing:
        fail(f"not printed within {DEADLINE} s of the sign-up: {', '.join(missing)}")
    traces = {m["traceId"] for _, m in seen.values()}
    if len(traces) != 1 or None in traces:
        fail(f"the chain's messages carry different trace ids: {traces}")
    requests = {m["requestId"] for _, m in seen.values()}
    if requests != {request_id}:
        fail(f"the chain's messages carry request ids {requests}, the sign-up sent {request_id}")
    for topic, (_, message) in seen.items():
        for field in ("eventId", "eventType", "time", "payload"):
            if not message.get(field):
                fail(f"{topic}: no {field} in {message}")
    last = max(delay for delay, _ in seen.values())
    print(f"PASS: the sign-up's 3 messages printed within {last:.3f} s, one trace id {traces.pop()}")


if __name__ == "__main__":
    main()
