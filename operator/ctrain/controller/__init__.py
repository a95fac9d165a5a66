"""The operator: kopf watches, one runtime reconciles every kind the same way.

Layers, top to bottom:

- `main` starts kopf; `handlers` holds the kopf registrations: one startup hook that
  builds the runtime, and event handlers that only record and enqueue.
- One subpackage per kind, each `reconcile` (read the world from the caches and the
  storage watch, call the pure modules, apply through the API wrapper, write status)
  over pure modules (`builders`, and `status`, `plan` or `triggers`): `trainingjob`,
  `modeldeployment`, `continuoustraining`. Each exports its `KIND` (reconcile, how a
  rejected object reads in status, its workers, its children). Kinds never import
  each other.
- `runtime`: per-kind work queues and workers, per-object backoff and deadlines, the
  caches of watched objects, the one `Context` every pass gets, status writing.
- `storage`: the operator's S3 access in one place: clients per endpoint with short
  timeouts, and the storage watch (champion aliases and datasets read with conditional
  requests, once per interval for all their followers).
- Shared plumbing: `kube` (the only module that talks to the apiserver), `deadline`,
  `conditions`, `config`, `metrics`, `podspec` (what every pod shares) and `names`
  (deterministic child names and label values).

Below the controller sit `ctrain.api` (types, time format, validation messages),
`ctrain.registry` and `ctrain.storage`; `.importlinter` enforces the layering.
"""
