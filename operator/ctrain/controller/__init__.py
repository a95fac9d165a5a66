"""The operator: kopf handlers (one module per kind) over pure builders and a thin API layer.

Layers, top to bottom: `handlers` (kopf registrations, route only) → `<kind>` reconcilers
(read the world, call builders, apply, write status) → `builders`/`*_status` (pure) and
`kube` (the only module that talks to the apiserver).
"""
