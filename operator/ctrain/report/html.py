"""The model report: one HTML page with plotly figures, readable without a network.

plotly.js is inlined once (about 4.5 MB), so the page opens from a CI artifact, an
e-mail or an air-gapped laptop; every figure is interactive (zoom, hover, hide traces).
This module is the only one that imports plotly, which is the optional ``report`` extra.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from ctrain.report.history import ModelHistory, VersionRecord

__all__ = ["render_report"]

_CONFIG = {"displaylogo": False, "responsive": True}
_COLORS = {"blessed": "#2ca02c", "unblessed": "#7f7f7f", "rejected": "#d62728"}
_STYLE = """
body { font-family: system-ui, sans-serif; color: #222; }
body { margin: 2rem auto; padding: 0 1.5rem; max-width: 72rem; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0 2rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plot { min-height: 420px; } .note { color: #666; font-size: 0.9rem; }
"""


def _state(record: VersionRecord) -> str:
    if record.rejected:
        return "rejected"
    return "blessed" if record.blessed else "unblessed"


def key_metric_figure(history: ModelHistory) -> go.Figure | None:
    """The key metric of every version over time, with each champion change marked."""
    metric = history.key_metric
    timed = [r for r in history.versions if r.created_at and metric in r.metrics]
    if metric is None or not timed:
        return None
    figure = go.Figure()
    for state in ("blessed", "unblessed", "rejected"):
        records = [r for r in timed if _state(r) == state]
        if not records:
            continue
        figure.add_trace(
            go.Scatter(
                x=[r.created_at for r in records],
                y=[r.metrics[metric] for r in records],
                mode="markers+text",
                name=state,
                text=[f"v{r.version}" for r in records],
                textposition="top center",
                marker={
                    "color": _COLORS[state],
                    "size": 11,
                    "symbol": "x" if state == "rejected" else "circle",
                },
                hovertemplate=f"%{{text}}<br>{metric}=%{{y:.4f}}<br>%{{x}}<extra>{state}</extra>",
            )
        )
    # The champion's key metric as a step line, stepping at each move of the alias.
    by_version = {r.version: r for r in history.versions}
    steps = [
        (c.time, by_version[c.to_version].metrics[metric], c)
        for c in history.changes
        if c.to_version in by_version and metric in by_version[c.to_version].metrics
    ]
    if steps:
        # The line runs on to the newest point drawn (RFC 3339 UTC strings sort by time).
        end = max([t for t, _, _ in steps] + [str(r.created_at) for r in timed])
        figure.add_trace(
            go.Scatter(
                x=[t for t, _, _ in steps] + [end],
                y=[v for _, v, _ in steps] + [steps[-1][1]],
                mode="lines",
                line={"shape": "hv", "color": "#1f77b4", "dash": "dot"},
                name="champion",
                hoverinfo="skip",
            )
        )
        for when, value, change in steps:
            figure.add_annotation(
                x=when, y=value, text=f"champion v{change.to_version}",
                hovertext=html.escape(change.reason), showarrow=True, arrowhead=2, ay=-35,
            )  # fmt: skip
    figure.update_layout(
        title=f"{metric} of every version",
        xaxis_title="created",
        yaxis_title=metric,
        hovermode="closest",
        legend={"orientation": "h"},
    )
    return figure


def metrics_figure(history: ModelHistory) -> go.Figure | None:
    """Every metric of every version, side by side."""
    names = history.metric_names()
    if not names:
        return None
    labels = [f"v{r.version}" for r in history.versions]
    figure = go.Figure()
    for name in names:
        figure.add_trace(
            go.Scatter(
                x=labels,
                y=[r.metrics.get(name) for r in history.versions],
                mode="lines+markers",
                name=name,
                connectgaps=False,
            )
        )
    figure.update_layout(title="Every metric by version", xaxis_title="version", hovermode="x")
    return figure


def drift_figure(deployment: str, records: Sequence[Mapping[str, Any]]) -> go.Figure | None:
    """The drift score and the PSI of each feature of one deployment over time."""
    timed = [r for r in records if r.get("time") and isinstance(r.get("score"), int | float)]
    if not timed:
        return None
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[r["time"] for r in timed], y=[r["score"] for r in timed], mode="lines+markers",
            name="drift score", line={"width": 3, "color": "#000"},
            text=[f"v{r.get('version', '?')}, {r.get('samples', '?')} rows" for r in timed],
            hovertemplate="%{y:.3f}<br>%{text}<extra>score</extra>",
        )
    )  # fmt: skip
    features = sorted({f for r in timed for f in (r.get("features") or {})})
    for feature in features:
        figure.add_trace(
            go.Scatter(
                x=[r["time"] for r in timed],
                y=[(r.get("features") or {}).get(feature) for r in timed],
                mode="lines",
                name=feature,
            )
        )
    thresholds = {r["threshold"] for r in timed if isinstance(r.get("threshold"), int | float)}
    if len(thresholds) == 1:
        figure.add_hline(
            y=thresholds.pop(), line_dash="dash", line_color="#d62728",
            annotation_text="threshold",
        )  # fmt: skip
    figure.update_layout(
        title=f"Drift of {deployment} (PSI per feature, mean as the score)",
        xaxis_title="checked",
        yaxis_title="PSI",
        hovermode="x unified",
    )
    return figure


def _table(history: ModelHistory) -> str:
    names = history.metric_names()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["version", "created", *names, "state", "champion", "TrainingJob"])  # fmt: skip
    rows = []
    for r in reversed(history.versions):
        cells = [
            f"<td>v{html.escape(r.version)}</td>",
            f"<td>{html.escape(r.created_at or '')}</td>",
        ]
        cells += [
            f'<td class="num">{r.metrics[n]:.4f}</td>' if n in r.metrics else "<td>-</td>"
            for n in names
        ]
        state = _state(r) + (f": {r.rejected_reason}" if r.rejected and r.rejected_reason else "")
        cells += [f"<td>{html.escape(state)}</td>", f"<td>{'★' if r.champion else ''}</td>"]
        cells += [f"<td>{html.escape(r.training_job or '')}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_report(
    history: ModelHistory,
    monitoring: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    generated: datetime | None = None,
) -> str:
    """The whole page: figures, the versions table, and a note for what had no data."""
    moment = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    sections: list[str] = []
    figures: list[tuple[str, go.Figure | None, str]] = [
        ("key-metric", key_metric_figure(history), "no version has a key metric and a time"),
        ("metrics", metrics_figure(history), "no version has metrics"),
    ]
    for deployment, records in (monitoring or {}).items():
        note = f"no drift records for {deployment} yet"
        figures.append((f"drift-{deployment}", drift_figure(deployment, records), note))
    for index, (name, figure, empty) in enumerate(figures):
        if figure is None:
            sections.append(f'<p class="note">{html.escape(empty)}</p>')
            continue
        div_id = f"plot-{index}-{''.join(c if c.isalnum() else '-' for c in name)}"
        fragment = figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG
        )
        sections.append(f'<div class="plot">{fragment}</div>')
        if index == 1:
            sections.append(_table(history))
    champion = f"v{history.champion}" if history.champion else "none"
    model = html.escape(history.model)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>ctrain report: {model}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{model}</h1>"
        f'<p class="meta">{len(history.versions)} versions, champion {champion}, key metric '
        f"{html.escape(history.key_metric or '-')}; generated {moment} by ctrain</p>"
        f"{''.join(sections)}</body></html>\n"
    )
