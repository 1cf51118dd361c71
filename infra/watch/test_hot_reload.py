#!/usr/bin/env python3
"""`make test-hot-reload`: runs `make watch`, edits a gateway handler three times
(waiting each time for the new response, then restoring the file), and reports the
median seconds from save to new behaviour. Throughout, a client polls the API every
20 ms and another polls every service's `/health/ready` every 250 ms. Exits non-zero if
any request failed, any service was not ready, or a change never showed.
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANDLER = os.path.join(ROOT, "api-gateway", "src", "routes", "index.rs")
URL = "http://127.0.0.1:3005/api"
READY = {name: f"http://127.0.0.1:{port}/health/ready" for name, port in
         {"user-service": 3001, "order-service": 3002, "payment-service": 3003, "api-gateway": 9305}.items()}
EDITS = 3
PATTERN = re.compile(r'pub const API_NAME: &str = "([^"]*)";')


def api_name():
    with urllib.request.urlopen(URL, timeout=5) as response:
        return json.load(response)["name"]


class Poller(threading.Thread):
    """A client asking all the time, as users would during a deploy."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.requests, self.failures, self.names = threading.Event(), 0, [], []

    def run(self):
        while not self.stop.is_set():
            try:
                name = api_name()
                self.names.append((time.time(), name))
            except Exception as error:  # noqa: BLE001 - every failure counts
                self.failures.append(f"{time.strftime('%H:%M:%S')} {error}")
            self.requests += 1
            time.sleep(0.02)

    def first_seen(self, name, after):
        return next((t for t, n in self.names if n == name and t >= after), None)


class ReadinessPoller(threading.Thread):
    """Every service must stay ready while another one is rebuilt and restarted."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.checks, self.failures = threading.Event(), 0, []

    def run(self):
        while not self.stop.is_set():
            for name, url in READY.items():
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        response.read()
                except Exception as error:  # noqa: BLE001 - not ready (503) or not answering
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {name}: {error}")
                self.checks += 1
            # Each check costs the backends a database query and a broker metadata request:
            # four times a second is "throughout" without loading the machine the build needs.
            time.sleep(0.25)


def wait_for(poller, name, after, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = poller.first_seen(name, after)
        if seen is not None:
            return seen
        time.sleep(0.05)
    return None


def main():
    original = open(HANDLER).read()
    old_name = PATTERN.search(original).group(1)
    watch = subprocess.Popen([sys.executable, os.path.join(ROOT, "infra", "watch", "watch.py")],
                             start_new_session=True)
    reloads, restores = [], []
    poller, ready = Poller(), ReadinessPoller()
    try:
        deadline = time.time() + 600
        while not (answers(old_name) and all_ready()):
            if time.time() > deadline or watch.poll() is not None:
                sys.exit("make watch did not come up with every service ready")
            time.sleep(0.2)
        poller.start()
        ready.start()
        time.sleep(1)  # a baseline of successful requests before the first edit

        for edit in range(EDITS):
            new_name = f"{old_name} (hot reloaded {int(time.time())}.{edit})"
            saved = time.time()
            with open(HANDLER, "w") as handler:
                handler.write(PATTERN.sub(f'pub const API_NAME: &str = "{new_name}";', original))
            seen = wait_for(poller, new_name, saved, 300)
            with open(HANDLER, "w") as handler:
                handler.write(original)
            restored_at = time.time()
            back = wait_for(poller, old_name, restored_at, 300)
            if seen is None or back is None:
                sys.exit(f"edit {edit + 1}: the edited handler's response never appeared")
            reloads.append(seen - saved)
            restores.append(back - restored_at)
            print(f"edit {edit + 1}: save → new response {reloads[-1]:.1f} s; restore → old response {restores[-1]:.1f} s",
                  flush=True)
        time.sleep(1)
    finally:
        poller.stop.set()
        ready.stop.set()
        # A round in flight must finish before the services go down, or the shutdown
        # itself would count as a failed request.
        for thread in (poller, ready):
            if thread.is_alive():
                thread.join(timeout=30)
        with open(HANDLER, "w") as handler:
            handler.write(original)
        os.killpg(watch.pid, signal.SIGTERM)
        watch.wait(timeout=60)

    print(f"hot reload: median save → new response {statistics.median(reloads):.1f} s over {EDITS} edits "
          f"({', '.join(f'{t:.1f}' for t in reloads)}); restores {', '.join(f'{t:.1f}' for t in restores)} s; "
          f"{poller.requests} API requests every 20 ms, {len(poller.failures)} failed; "
          f"{ready.checks} readiness checks of the four services every 250 ms, {len(ready.failures)} not ready")
    for failure in (poller.failures + ready.failures)[:10]:
        print(f"  failed: {failure}")
    sys.exit(1 if poller.failures or ready.failures else 0)


def answers(name):
    try:
        return api_name() == name
    except Exception:  # noqa: BLE001 - not up yet
        return False


def all_ready():
    for url in READY.values():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except Exception:  # noqa: BLE001 - not ready yet
            return False
    return True


if __name__ == "__main__":
    main()
