"""`ctrain serve`: an Open Inference Protocol v2 server for one scikit-learn model.

The pieces, each in its own module:

- `source`: where the model comes from (registry, directory, memory), injected;
- `holder`: the load → ready lifecycle, with retries and a not-ready reason;
- `model`: the loaded model with its protocol surface precomputed;
- `codec`: v2 tensors to numpy rows and back, validated before anything is allocated;
- `limits`: what one client may cost (body, rows, strings, concurrency, bytes, timeouts);
- `inference`: one request from admission to response, small ones batched, large ones
  in a worker thread;
- `batching`: adaptive micro-batching of concurrent requests;
- `drift`: PSI of served inputs against the training statistics;
- `predlog`, `predtable`: sampled predictions to Parquet objects in S3, off the hot path;
- `metrics`: Prometheus metrics;
- `app`: the ASGI app tying them together;
- `protocol`, `server`: uvicorn with header/body timeouts and a header size bound;
- `direct`: POST /infer answered from the protocol, without an ASGI cycle;
- `workers`: `--workers N` processes on one port, answering as one pod;
- `settings`: the options of `ctrain serve` and the app built from them;
- `logs`: text or JSON log lines.
"""

from ctrain.serving.app import ServingApp
from ctrain.serving.batching import MicroBatcher
from ctrain.serving.drift import DriftMonitor, DriftSnapshot
from ctrain.serving.errors import ModelLoadError, ServingError
from ctrain.serving.holder import ModelHolder, ModelState
from ctrain.serving.metrics import ServingMetrics
from ctrain.serving.model import ServedModel
from ctrain.serving.source import (
    DirectorySource,
    LoadedModel,
    ModelSource,
    RegistrySource,
    StaticSource,
)

__all__ = [
    "DirectorySource",
    "DriftMonitor",
    "DriftSnapshot",
    "LoadedModel",
    "MicroBatcher",
    "ModelHolder",
    "ModelLoadError",
    "ModelSource",
    "ModelState",
    "RegistrySource",
    "ServedModel",
    "ServingApp",
    "ServingError",
    "ServingMetrics",
    "StaticSource",
]
