"""The benchmark's world: its own sandbox, the operator process under test, a registry.

The sandbox is the one `ctrain dev up` starts (real etcd, kube-apiserver, controllers, the
S3 API), in a directory of its own so it never collides with a developer's or a test's.
The operator runs as a host process like in the integration tests; `--operator-path`
puts another checkout's `operator/` first on PYTHONPATH, which is how the figures of two
versions of the code are compared on the same sandbox.
"""

import concurrent.futures
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import boto3
from kubernetes import client, config

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.registry import Registry
from ctrain_dev import host
from ctrain_dev.sandbox import operator as sandbox_operator
from ctrain_dev.sandbox import sandbox as sandbox_module

__all__ = ["Cluster", "OperatorProcess", "default_sandbox_dir"]

GROUP, VERSION = "ctrain.dev", "v1alpha1"
THREADS = 16  # concurrent API clients of the benchmark when it applies many objects


def default_sandbox_dir() -> Path:
    configured = os.environ.get("CTRAIN_BENCH_SANDBOX_DIR")
    if configured:
        return Path(configured)
    return sandbox_module.default_dir().parent / "bench-operator"


class OperatorProcess:
    """`ctrain operator` as a host process, from this checkout or from `source`."""

    def __init__(self, state: sandbox_module.State, log: Path, source: Path | None) -> None:
        env = sandbox_operator.operator_env(state)
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(source), *filter(None, [env.get("PYTHONPATH")])]
            )
        argv = [sys.executable, "-m", "ctrain.cli", "operator", "--liveness-port=0"]
        self.process = host.spawn("ctrain-operator", argv, log, env=env)
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        host.stop(self.process)


class Cluster:
    """API clients and object factories against the benchmark's sandbox."""

    def __init__(self, state: sandbox_module.State) -> None:
        self.state = state
        api = config.new_client_from_config(str(state.kubeconfig))
        api.configuration.connection_pool_maxsize = THREADS * 2
        # A pool per thread keeps the benchmark's own client from being its bottleneck.
        self.api_client = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        env = state.env()
        self.s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        self.registry = Registry(self.s3, "models", "ctrain")

    # --- namespaces ------------------------------------------------------------------------

    def namespace(self, name: str, *, no_pods: bool = False) -> str:
        """A fresh namespace with the S3 credentials Secret; `no_pods`: a quota of 0 pods."""
        self.core.create_namespace({"metadata": {"name": name}})
        sandbox_operator.credentials_secret(self.state, name)
        if no_pods:
            quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
            self.core.create_namespaced_resource_quota(name, quota)
        return name

    def delete_namespace(self, name: str, timeout: float = 300) -> None:
        self.core.delete_namespace(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(n.metadata.name == name for n in self.core.list_namespace().items):
                return
            time.sleep(1)
        raise TimeoutError(f"namespace {name} still there after {timeout:.0f}s")

    # --- custom objects --------------------------------------------------------------------

    def create_all(
        self, plural: str, namespace: str, bodies: Iterable[dict[str, Any]]
    ) -> dict[str, float]:
        """Create the objects concurrently; the monotonic time each create returned, by name.

        Plain HTTPS requests on kept-alive connections with the bodies encoded up front:
        the benchmark shares the machine with the operator, and the generated client would
        spend more CPU building 1,000 requests than the operator spends answering them.
        """
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
        encoded = [(body["metadata"]["name"], json.dumps(body).encode()) for body in bodies]
        local = threading.local()

        def create(item: tuple[str, bytes]) -> tuple[str, float]:
            if not hasattr(local, "connection"):
                local.connection = self._connection()
            name, data = item
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            local.connection.request("POST", path, body=data, headers=headers)
            response = local.connection.getresponse()
            answer = response.read()
            if response.status != 201:
                raise RuntimeError(f"creating {name}: {response.status} {answer[:300]!r}")
            return name, time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            return dict(pool.map(create, encoded))

    def _connection(self) -> http.client.HTTPSConnection:
        settings = self.api_client.configuration
        context = ssl.create_default_context(cafile=settings.ssl_ca_cert)
        context.load_cert_chain(settings.cert_file, settings.key_file)
        url = urllib.parse.urlsplit(settings.host)
        return http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=60)

    def delete_all(self, plural: str, namespace: str, names: Iterable[str]) -> None:
        def delete(name: str) -> None:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(delete, names))

    def list_custom(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        result = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        return list(result["items"])

    def wait(
        self, check: Callable[[], int], total: int, timeout: float, interval: float = 1.0
    ) -> tuple[float | None, int]:
        """Seconds until `check()` reaches `total` (None on timeout) and the last count."""
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < timeout:
            count = check()
            if count >= total:
                return time.monotonic() - started, count
            time.sleep(interval)
        return None, count

    # --- the registry ----------------------------------------------------------------------

    def publish(self, model: str, versions: int) -> None:
        """`versions` visible versions of `model` (tiny stand-in artifacts), champion 1.

        No pod ever loads them (the ModelDeployments have no replicas); the operator only
        resolves versions and follows the champion alias.
        """
        for _ in range(versions):
            version = self.registry.reserve_version(model, owner="benchmark")
            self.registry.publish(
                model,
                version,
                b"not a model: the benchmark serves nothing",
                ModelMetadata(task="classification", metrics={"accuracy": 0.9}),
                Reference(rows=0),
            )
        self.registry.set_champion(model, "1", "benchmark")

    def move_champion(self, model: str, version: str) -> float:
        """Move the champion to `version` as `ctrain models promote` does (the champion log,
        then the alias copy); the monotonic time just before the move began."""
        started = time.monotonic()
        self.registry.set_champion(model, version, "benchmark: reaction", by="benchmark")
        return started


def model_deployment(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "version": "champion", "replicas": 0},
    }


def training_job(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
        },
    }


def continuous_training(name: str, model: str) -> dict[str, Any]:
    """A loop with nothing to do: a yearly schedule, so it only watches its champion."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ContinuousTraining",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": training_job(name, model)["spec"]},
            "triggers": {"schedule": "0 3 1 1 *"},
        },
    }
