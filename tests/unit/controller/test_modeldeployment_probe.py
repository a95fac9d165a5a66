"""Scraping serving pods: only the deployment's current ReplicaSet's pods, bounded answers."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fakes import FakeApi

from ctrain.controller.kube import REPLICASETS
from ctrain.controller.modeldeployment import probe

pytestmark = pytest.mark.unit
NS = "ml"
DEPLOYMENT = {
    "metadata": {
        "name": "iris",
        "namespace": NS,
        "uid": "deploy-uid",
        "annotations": {probe.REVISION: "2"},
    },
    "spec": {"selector": {"matchLabels": {"ctrain.dev/deployment": "iris"}}},
}


def replicaset(uid: str, revision: str, owner: str = "deploy-uid") -> dict:
    return {
        "metadata": {
            "name": f"iris-{uid}",
            "namespace": NS,
            "uid": uid,
            "labels": {"ctrain.dev/deployment": "iris"},
            "annotations": {probe.REVISION: revision},
            "ownerReferences": [{"uid": owner, "controller": True}],
        }
    }


def pod(ip: str, controller: str | None) -> dict:
    owners = [{"uid": controller, "controller": True}] if controller else []
    return {
        "metadata": {"name": f"pod-{ip}", "labels": {}, "ownerReferences": owners},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_only_pods_of_the_current_replicaset_are_scraped() -> None:
    api = FakeApi()
    api.put(REPLICASETS, replicaset("rs-current", "2"))
    api.put(REPLICASETS, replicaset("rs-old", "1"))
    api.put(REPLICASETS, replicaset("rs-foreign", "2", owner="someone-else"))
    pods = [
        pod("10.0.0.1", "rs-current"),
        pod("10.0.0.2", "rs-old"),
        pod("10.0.0.3", "rs-foreign"),
        pod("10.0.0.4", None),  # the right labels, made by hand
    ]
    assert probe.scrape_ips(api, DEPLOYMENT, pods) == ["10.0.0.1"]  # type: ignore[arg-type]
    assert probe.scrape_ips(api, None, pods) == []  # type: ignore[arg-type]


def test_nothing_ready_costs_no_list() -> None:
    api = FakeApi()
    assert probe.scrape_ips(api, DEPLOYMENT, []) == []  # type: ignore[arg-type]
    assert api.calls == []


SENT: list[int] = []


@pytest.fixture
def hostile_pod() -> Iterator[int]:
    """A 'serving pod' answering with a 640 MiB body; SENT: bytes it got to send."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            chunk = b"# " + b"x" * 65533 + b"\n"
            sent = 0
            try:
                for _ in range(10_000):
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the operator hung up: what it should do
            SENT.append(sent)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_answers_are_read_up_to_a_limit(hostile_pod: int) -> None:
    SENT.clear()
    assert probe.canary_counts(["127.0.0.1"], hostile_pod) == {"127.0.0.1": None}  # unscraped
    assert probe.drift_reports(["127.0.0.1"], hostile_pod) == []
    deadline = time.monotonic() + 10
    while len(SENT) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the handlers notice the hang-up on their next write
    assert len(SENT) == 2
    # The limit plus what socket buffers took before the operator hung up.
    assert max(SENT) < 32 * probe.BODY_LIMIT
