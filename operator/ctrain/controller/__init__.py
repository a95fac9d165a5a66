"""The operator: kopf handlers routing to one controller per kind, over shared plumbing.

Layers, top to bottom:

- `main` starts kopf; `handlers` holds the kopf registrations (route only) and the
  resync loops of every kind.
- One subpackage per kind, each `reconcile` (read the world, call the pure modules,
  apply, write status) over pure modules (`builders`, and `status`, `plan` or `triggers`):
  `trainingjob`, `modeldeployment`, `continuoustraining`. Kinds never import each other.
- Shared plumbing every kind may use: `kube` (the only module that talks to the
  apiserver), `conditions`, `config`, `metrics`, `podspec` (what every pod shares)
  and `names` (deterministic child names and label values).

Below the controller sit `ctrain.api` (types, time format, validation messages),
`ctrain.registry` and `ctrain.storage`; `.importlinter` enforces the layering.
"""
