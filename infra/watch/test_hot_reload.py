#!/usr/bin/env python3
"""`make test-hot-reload`: runs `make watch`, edits a gateway handler, waits for
the new response, restores the file, and reports the seconds from save to new
behaviour and how many requests of a client polling throughout failed.
Exits non-zero if any request failed or the change never showed.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANDLER = os.path.join(ROOT, "api-gateway", "src", "routes", "index.rs")
URL = "http://127.0.0.1:3005/api"
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
    try:
        deadline = time.time() + 600
        while True:
            try:
                if api_name() == old_name:
                    break
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.time() > deadline or watch.poll() is not None:
                sys.exit("make watch did not come up")
            time.sleep(0.2)
        poller = Poller()
        poller.start()
        time.sleep(1)  # a baseline of successful requests before the edit

        new_name = f"{old_name} (hot reloaded {int(time.time())})"
        saved = time.time()
        with open(HANDLER, "w") as handler:
            handler.write(PATTERN.sub(f'pub const API_NAME: &str = "{new_name}";', original))
        seen = wait_for(poller, new_name, saved, 300)
        with open(HANDLER, "w") as handler:
            handler.write(original)
        restored_at = time.time()
        back = wait_for(poller, old_name, restored_at, 300)
        time.sleep(1)
        poller.stop.set()
        poller.join()
    finally:
        with open(HANDLER, "w") as handler:
            handler.write(original)
        os.killpg(watch.pid, signal.SIGTERM)
        watch.wait(timeout=60)

    if seen is None or back is None:
        sys.exit("the edited handler's response never appeared")
    print(f"hot reload: save → new response in {seen - saved:.1f} s; restore → old response in {back - restored_at:.1f} s; "
          f"{poller.requests} requests while polling every 20 ms, {len(poller.failures)} failed")
    for failure in poller.failures[:10]:
        print(f"  failed: {failure}")
    sys.exit(1 if poller.failures else 0)


if __name__ == "__main__":
    main()
