"""The generated CRDs: structural schemas the apiserver accepts, CEL rules, columns, freshness."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ctrain.api import KINDS, ContinuousTraining, ModelDeployment, Resource, TrainingJob
from ctrain_dev.generate.cli import generate
from ctrain_dev.generate.crd import build_all, build_crd, file_name, render_all, structural

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Keys an OpenAPI v3 schema in a CRD may hold (apiextensions.k8s.io/v1 JSONSchemaProps).
ALLOWED_KEYS = {
    "type",
    "format",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def schema_of(kind: type[Resource]) -> dict[str, Any]:
    schema: dict[str, Any] = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its dotted path (`[]` for items, `{}` for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def node_at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for name in dotted.strip(".").split("."):
        node = node["properties"][name]
    return node


def conforms(value: Any, node: dict[str, Any]) -> bool:
    """Whether a default value validates against its schema node (types, enums, bounds)."""
    kind = node.get("type")
    checks = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }
    if not checks.get(str(kind), False):
        return False
    if "enum" in node and value not in node["enum"]:
        return False
    if "pattern" in node and not re.search(node["pattern"], value):
        return False
    if "minimum" in node and (
        value < node["minimum"] or (node.get("exclusiveMinimum") and value == node["minimum"])
    ):
        return False
    return "maximum" not in node or not (
        value > node["maximum"] or (node.get("exclusiveMaximum") and value == node["maximum"])
    )


@pytest.fixture(params=KINDS, ids=[kind.KIND for kind in KINDS])
def kind(request: pytest.FixtureRequest) -> type[Resource]:
    result: type[Resource] = request.param
    return result


def test_schema_is_structural(kind: type[Resource]) -> None:
    problems = []
    for path, node in walk(schema_of(kind)):
        where = path or "<root>"
        if unknown := set(node) - ALLOWED_KEYS:
            problems.append(f"{where}: keys not allowed in a CRD schema: {sorted(unknown)}")
        typeless = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        if node.get("type") not in TYPES and not typeless:
            problems.append(f"{where}: no type")
        if ("properties" in node or "additionalProperties" in node) and node["type"] != "object":
            problems.append(f"{where}: an object without type: object")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties together")
        if node.get("additionalProperties") is False:
            problems.append(f"{where}: additionalProperties: false")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: an array without items")
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node and not isinstance(node[bound], bool):
                problems.append(f"{where}: {bound} must be a boolean in OpenAPI v3")
        if "default" in node and not conforms(node["default"], node):
            problems.append(f"{where}: default {node['default']!r} does not validate")
        if "required" in node:
            missing = set(node["required"]) - set(node.get("properties", {}))
            if missing:
                problems.append(f"{where}: required names unknown fields {sorted(missing)}")
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            item = node["items"]
            if not all(
                k in item.get("required", []) or "default" in item["properties"][k] for k in keys
            ):
                problems.append(f"{where}: list-map keys must be required or defaulted")
        if node.get("x-kubernetes-validations") and "type" not in node:
            problems.append(f"{where}: CEL rules on a node without a type")
    assert problems == []


def test_rendered_yaml_has_no_refs_nulls_or_anchors(kind: type[Resource]) -> None:
    text = render_all()[file_name(kind)]
    for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title:", "&id", "*id"):
        assert forbidden not in text
    assert not re.search(r":\s*null\s*$", text, flags=re.MULTILINE)
    assert text.endswith("\n")
    assert yaml.safe_load(text) == build_crd(kind)


def test_names_and_scope(kind: type[Resource]) -> None:
    crd = build_crd(kind)
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{kind.PLURAL}.ctrain.dev"
    assert crd["spec"]["group"] == "ctrain.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert names["kind"] == kind.KIND
    assert names["categories"] == ["ctrain"]
    version = crd["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"]["status"] == {}
    assert schema_of(kind)["required"] == ["spec"]


@pytest.mark.parametrize(
    ("kind", "plural", "short"),
    [
        (TrainingJob, "trainingjobs", "tj"),
        (ModelDeployment, "modeldeployments", "md"),
        (ContinuousTraining, "continuoustrainings", "ct"),
    ],
)
def test_plural_and_short_names(kind: type[Resource], plural: str, short: str) -> None:
    names = build_crd(kind)["spec"]["names"]
    assert (names["plural"], names["shortNames"]) == (plural, [short])
    assert f"ctrain.dev_{plural}.yaml" in render_all()


def test_model_deployment_is_scalable() -> None:
    scale = build_crd(ModelDeployment)["spec"]["versions"][0]["subresources"]["scale"]
    schema = schema_of(ModelDeployment)
    assert node_at(schema, scale["specReplicasPath"])["type"] == "integer"
    assert node_at(schema, scale["statusReplicasPath"])["type"] == "integer"
    assert node_at(schema, scale["labelSelectorPath"])["type"] == "string"


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        (TrainingJob, ["Phase", "Model", "Version", "Metric", "Blessed", "Age"]),
        (ModelDeployment, ["Phase", "Model", "Version", "Ready", "Drift", "Age"]),
        (ContinuousTraining, ["Phase", "Model", "Champion", "Last Run", "Suspended", "Age"]),
    ],
)
def test_printer_columns_point_at_fields_of_their_type(
    kind: type[Resource], columns: list[str]
) -> None:
    printed = build_crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [column["name"] for column in printed] == columns
    schema = schema_of(kind)
    for column in printed:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        assert node_at(schema, column["jsonPath"])["type"] == column["type"], column


def rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


def test_training_job_spec_is_immutable_but_a_template_is_not() -> None:
    spec = node_at(schema_of(TrainingJob), "spec")
    immutable = [r for r in spec["x-kubernetes-validations"] if r["rule"] == "self == oldSelf"]
    assert immutable == [
        {
            "rule": "self == oldSelf",
            "message": "spec is immutable once a TrainingJob exists; create a new TrainingJob",
        }
    ]
    template_spec = node_at(schema_of(ContinuousTraining), "spec.template.spec")
    assert "self == oldSelf" not in rules(template_spec)
    assert "self == oldSelf" not in rules(node_at(schema_of(ContinuousTraining), "spec"))


@pytest.mark.parametrize(
    ("kind", "path", "rule_fragment"),
    [
        (TrainingJob, "spec.evaluation.testSize", "self > 0.0 && self < 1.0"),
        (TrainingJob, "spec.dataset", "has(self.target)"),
        (ModelDeployment, "spec.strategy", "self.type == 'Canary'"),
        (ModelDeployment, "spec.monitoring", "self.predictionLog.enabled"),
        (ModelDeployment, "spec.monitoring.performance", "has(self.threshold)"),
        (ContinuousTraining, "spec.template.spec.evaluation.testSize", "self < 1.0"),
    ],
)
def test_cel_rules_present(kind: type[Resource], path: str, rule_fragment: str) -> None:
    assert any(rule_fragment in rule for rule in rules(node_at(schema_of(kind), path)))


def test_gate_rules_are_bounded_for_the_cel_cost_budget() -> None:
    gates = node_at(schema_of(TrainingJob), "spec.evaluation.gates")
    assert gates["maxItems"] <= 100
    assert "has(self.min) || has(self.max)" in rules(gates["items"])
    test_size = node_at(schema_of(TrainingJob), "spec.evaluation.testSize")
    assert (test_size["minimum"], test_size["maximum"]) == (0, 1)
    assert test_size["exclusiveMinimum"] is True
    assert test_size["exclusiveMaximum"] is True


def test_free_form_objects_preserve_unknown_fields() -> None:
    spec = node_at(schema_of(TrainingJob), "spec")
    node = node_at(spec, "estimator.params")
    assert node == {**node, "type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_resources_have_the_resource_requirements_schema() -> None:
    resources = node_at(schema_of(TrainingJob), "spec.resources")
    assert set(resources["properties"]) == {"limits", "requests", "claims"}
    assert "x-kubernetes-preserve-unknown-fields" not in resources
    quantity = resources["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert "type" not in quantity and "pattern" in quantity


def test_enums_and_defaults_come_from_the_models() -> None:
    spec = node_at(schema_of(TrainingJob), "spec")
    assert "sklearn.linear_model.LogisticRegression" in node_at(spec, "estimator.type")["enum"]
    assert node_at(spec, "dataset.format")["enum"] == ["csv", "parquet"]
    assert node_at(spec, "evaluation.testSize")["default"] == 0.2
    assert node_at(spec, "evaluation.seed")["default"] == 42
    assert node_at(spec, "backoffLimit")["format"] == "int32"
    assert node_at(spec, "activeDeadlineSeconds")["format"] == "int64"
    assert "default" not in node_at(spec, "storage")
    assert "dataset" in spec["required"]
    assert "storage" not in spec["required"]
    status = node_at(schema_of(TrainingJob), "status")
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert conditions["items"]["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_every_field_is_documented(kind: type[Resource]) -> None:
    undocumented = [
        path
        for path, node in walk(schema_of(kind))
        if path and not path.endswith(("[]", "{}")) and not path.startswith(".metadata")
        if not node.get("description")
    ]
    assert undocumented == []


# --- the converter on its own ----------------------------------------------------------


def test_structural_inlines_refs_and_optional() -> None:
    schema = {
        "$defs": {
            "Inner": {
                "title": "Inner",
                "type": "object",
                "description": "doc",
                "properties": {"a": {"type": "integer", "exclusiveMinimum": 0}},
            }
        },
        "title": "Outer",
        "type": "object",
        "properties": {
            "inner": {
                "anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}],
                "default": None,
                "description": "field doc",
            },
            "fixed": {"const": "x"},
            "anything": {},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
    }
    assert structural(schema) == {
        "type": "object",
        "properties": {
            "inner": {
                "type": "object",
                "description": "field doc",
                "properties": {"a": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}},
            },
            "fixed": {"type": "string", "enum": ["x"]},
            "anything": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        },
    }


def test_structural_refuses_real_unions() -> None:
    with pytest.raises(ValueError, match="structurally"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


# --- generated files -------------------------------------------------------------------


def test_generated_files_are_fresh() -> None:
    directory = ROOT / "crds"
    expected = render_all()
    on_disk = {path.name: path.read_text() for path in sorted(directory.glob("*.yaml"))}
    assert on_disk == expected, f"{directory} is stale: run `make generate`"


def test_render_is_deterministic() -> None:
    assert render_all() == render_all()
    assert build_all().keys() == render_all().keys()


def test_generate_command_writes_checks_and_prunes(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "crds"
    stale = runner.invoke(generate, ["--output-dir", str(out), "--check"])
    assert stale.exit_code == 1
    assert "make generate" in stale.output

    (out).mkdir()
    leftover = out / "ctrain.dev_oldkinds.yaml"
    leftover.write_text("old\n")
    wrote = runner.invoke(generate, ["--output-dir", str(out)])
    assert wrote.exit_code == 0, wrote.output
    assert not leftover.exists()
    assert {path.name: path.read_text() for path in out.glob("*.yaml")} == render_all()

    fresh = runner.invoke(generate, ["--output-dir", str(out), "--check"])
    assert fresh.exit_code == 0, fresh.output

    (out / file_name(TrainingJob)).write_text("edited by hand\n")
    edited = runner.invoke(generate, ["--output-dir", str(out), "--check"])
    assert edited.exit_code == 1
    assert file_name(TrainingJob) in edited.output
