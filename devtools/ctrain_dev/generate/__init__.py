"""Generated files: the CRDs (`crd`), their Helm-template copies (`chart`) and `ctrain generate`.

The pydantic models in `ctrain.api` are the source of truth; everything here derives YAML
from them and never runs in a cluster.
"""
