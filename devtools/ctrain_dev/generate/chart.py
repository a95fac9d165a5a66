"""The Helm chart's CRD templates, generated from the same CRDs as `crds/`.

The chart ships the CRDs as templates (not in Helm's `crds/` directory, which Helm never
upgrades), cert-manager style: each is rendered only when `crds.enabled`, and carries
`helm.sh/resource-policy: keep` when `crds.keep`, so `helm uninstall` does not delete
every TrainingJob with its CRD. Argo CD renders charts with `helm template` and honours
that annotation only when an Application is deleted, so `crds.keep` also sets Argo CD's
own `Delete=false,Prune=false`: a CRD that leaves the rendered chart (`crds.enabled`
turned off) is not pruned either. The templates are derived files: `ctrain generate`
writes them and a test fails when they are stale.
"""

import re
from pathlib import Path
from typing import Any

import yaml

from ctrain_dev.generate.crd import HEADER, build_all, render

__all__ = ["CHART_CRD_SUBDIR", "escape_template", "render_chart_crd", "render_chart_crds"]

CHART_CRD_SUBDIR = Path("charts") / "ctrain" / "templates" / "crds"

_METADATA_PLACEHOLDER = "__CTRAIN_CHART_METADATA__"
_TEMPLATE_DELIMITERS = re.compile(r"\{\{|\}\}")


def escape_template(text: str) -> str:
    """Make `{{` and `}}` in generated text literal for Helm's template engine."""
    return _TEMPLATE_DELIMITERS.sub(lambda match: '{{ "' + match.group(0) + '" }}', text)


def _metadata_block(metadata: dict[str, Any]) -> str:
    """The CRD's metadata with the chart's labels and the templated keep annotation."""
    labels = yaml.safe_dump(metadata.get("labels", {}), sort_keys=True).strip()
    return "\n".join(
        [
            "metadata:",
            f"  name: {metadata['name']}",
            "  labels:",
            *(f"    {line}" for line in labels.splitlines()),
            '    {{- include "ctrain.crdLabels" . | nindent 4 }}',
            "  {{- if .Values.crds.keep }}",
            "  annotations:",
            "    helm.sh/resource-policy: keep",
            "    argocd.argoproj.io/sync-options: Delete=false,Prune=false",
            "  {{- end }}",
        ]
    )


def render_chart_crd(crd: dict[str, Any]) -> str:
    """One CRD as a chart template: the `render()` text, wrapped and with chart metadata."""
    body = render({**crd, "metadata": _METADATA_PLACEHOLDER}).removeprefix(HEADER)
    placeholder_line = f"metadata: {_METADATA_PLACEHOLDER}"
    if body.count(placeholder_line) != 1:
        raise ValueError("the CRD's metadata is not a top-level line of its YAML")
    body = escape_template(body).replace(placeholder_line, _metadata_block(crd["metadata"]))
    return "{{- if .Values.crds.enabled }}\n" + HEADER + body + "{{- end }}\n"


def render_chart_crds() -> dict[str, str]:
    """Every CRD template by file name (the same names as `render_all()`)."""
    return {name: render_chart_crd(crd) for name, crd in build_all().items()}
