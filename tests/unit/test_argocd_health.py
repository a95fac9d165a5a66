"""The Argo CD health checks in deploy/argocd/, run the way Argo CD runs them.

Argo CD evaluates `health.lua` in gopher-lua (Lua 5.1) with only the base and table
libraries when the script comes from `argocd-cm` (`useOpenLibs` is off by default), with
the live object as the global `obj`, converted from JSON: maps become tables, lists
1-indexed tables (gopher-lua's Append skips nil items), null nil, timestamps strings.
Its own test runner (`util/lua/health_test.go`) reads each `health_test.yaml` and
compares the returned `{status, message}` with `healthStatus`; so do these tests, on
Lua 5.1 through lupa, in a sandbox that is stricter than Argo CD's where a script could
only pass by accident: no string or math library (not even string methods), reading an
undefined global is an error, and a script that leaves a global behind fails.

Also here: the samples are objects the operator could write (they parse with the API
models and use its condition vocabulary), the generated argocd-cm patch is current, and
the GitOps examples parse.
"""

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ctrain.api import (
    ConditionType,
    ContinuousTraining,
    ModelDeployment,
    Reason,
    TrainingJob,
)

try:  # Lua 5.1 semantics, as gopher-lua implements them
    from lupa import lua51 as lupa_runtime
except ImportError:  # pragma: no cover - lupa built without the bundled Lua 5.1
    import lupa as lupa_runtime

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
GROUP = "ctrain.dev"
KINDS: dict[str, type[TrainingJob] | type[ModelDeployment] | type[ContinuousTraining]] = {
    kind.KIND: kind for kind in (TrainingJob, ModelDeployment, ContinuousTraining)
}
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# Samples of phases a newer operator might add: they exercise the Unknown verdict and
# therefore cannot parse with today's models.
NOT_PARSEABLE_BY_DESIGN = {"unknown_phase.yaml"}


class _ArgoYamlLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it for Argo CD: timestamps stay strings."""


_ArgoYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_ArgoYamlLoader)  # a SafeLoader subclass


# --- the Lua harness -------------------------------------------------------------------

# Runs `script` in a fresh environment holding what Argo CD's sandbox offers (the base
# functions health checks use, the table library) and `obj`. Returns the script's result
# and the names of globals it left behind.
_RUNNER = """
local BASE = {"assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
              "rawget", "rawset", "select", "setmetatable", "getmetatable", "tonumber",
              "tostring", "type", "unpack", "xpcall"}
return function(script, name, obj)
  local env = {}
  for _, key in ipairs(BASE) do env[key] = _G[key] end
  env.table = {}
  for key, value in pairs(table) do env.table[key] = value end
  env._G = env
  env.obj = obj
  local initial = {}
  for key in pairs(env) do initial[key] = true end
  setmetatable(env, {__index = function(_, key)
    error("read of undefined global '" .. tostring(key) .. "'", 2)
  end})
  local chunk, problem
  if setfenv then
    chunk, problem = loadstring(script, "=" .. name)
    if chunk then setfenv(chunk, env) end
  else
    chunk, problem = load(script, "=" .. name, "t", env)
  end
  if not chunk then error(problem, 0) end
  -- gopher-lua without the string library has no string metatable: ("x"):len() fails.
  local strings = getmetatable("")
  local methods = strings.__index
  strings.__index = nil
  local ok, result = pcall(chunk)
  strings.__index = methods
  if not ok then error(result, 0) end
  local leaked = {}
  for key in pairs(env) do
    if not initial[key] then leaked[#leaked + 1] = tostring(key) end
  end
  return result, leaked
end
"""


class LuaHealth:
    """One Lua 5.1 runtime that evaluates health scripts against Python objects."""

    def __init__(self) -> None:
        self.lua = lupa_runtime.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
        self._run = self.lua.execute(_RUNNER)

    def to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            table = self.lua.table()
            for key, item in value.items():
                if item is not None:
                    table[_json_key(key)] = self.to_lua(item)
            return table
        if isinstance(value, list):
            table = self.lua.table()
            index = 0
            for item in value:
                if item is not None:
                    index += 1
                    table[index] = self.to_lua(item)
            return table
        if isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"{type(value).__name__} has no JSON form: {value!r}")

    def evaluate(self, script: str, name: str, obj: dict[str, Any]) -> dict[str, str]:
        """The `{status, message}` the script returns, as Argo CD decodes it."""
        result, leaked = self._run(script, name, self.to_lua(obj))
        leaked_names = sorted(leaked.values())
        assert not leaked_names, f"{name} sets globals {leaked_names}; use local"
        assert lupa_runtime.lua_type(result) == "table", f"{name} returned {result!r}, not a table"
        status = result["status"]
        assert status in HEALTH_STATUSES, f"{name} returned the invalid status {status!r}"
        return {"status": status, "message": result["message"] or ""}


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


@pytest.fixture(scope="module")
def lua() -> LuaHealth:
    return LuaHealth()


# --- the health_test.yaml cases --------------------------------------------------------


def _kind_dirs() -> list[Path]:
    return sorted(path.parent for path in (ARGOCD / GROUP).glob("*/health.lua"))


def _cases() -> list[Any]:
    cases = []
    for directory in _kind_dirs():
        for test in load_yaml(directory / "health_test.yaml")["tests"]:
            cases.append(
                pytest.param(
                    directory,
                    test["inputPath"],
                    test["healthStatus"],
                    id=f"{directory.name}/{test['inputPath']}",
                )
            )
    return cases


def test_every_kind_has_a_health_check() -> None:
    assert [directory.name for directory in _kind_dirs()] == sorted(KINDS)
    for directory in _kind_dirs():
        assert (directory / "health_test.yaml").is_file()


@pytest.mark.parametrize(("directory", "input_path", "expected"), _cases())
def test_health(lua: LuaHealth, directory: Path, input_path: str, expected: dict[str, str]) -> None:
    obj = load_yaml(directory / input_path)
    assert obj["kind"] == directory.name
    verdict = lua.evaluate((directory / "health.lua").read_text(), directory.name, obj)
    assert verdict == {"status": expected["status"], "message": expected.get("message", "")}


@pytest.mark.parametrize("directory", _kind_dirs(), ids=lambda path: path.name)
def test_every_sample_is_tested(directory: Path) -> None:
    listed = {test["inputPath"] for test in load_yaml(directory / "health_test.yaml")["tests"]}
    present = {f"testdata/{path.name}" for path in (directory / "testdata").glob("*.yaml")}
    assert listed == present


@pytest.mark.parametrize("directory", _kind_dirs(), ids=lambda path: path.name)
def test_every_verdict_is_covered(directory: Path) -> None:
    verdicts = {
        test["healthStatus"]["status"]
        for test in load_yaml(directory / "health_test.yaml")["tests"]
    }
    expected = {"Healthy", "Progressing", "Degraded"}
    if directory.name == "ContinuousTraining":
        expected.add("Suspended")
    assert verdicts >= expected


def _samples() -> list[Any]:
    return [
        pytest.param(path, id=f"{path.parent.parent.name}/{path.name}")
        for directory in _kind_dirs()
        for path in sorted((directory / "testdata").glob("*.yaml"))
        if path.name not in NOT_PARSEABLE_BY_DESIGN
    ]


def _unknown_keys(sample: Any, known: Any, path: str) -> list[str]:
    """Keys of `sample` that the model's round trip dropped: fields it does not have."""
    if isinstance(sample, dict) and isinstance(known, dict):
        unknown = []
        for key, value in sample.items():
            if key not in known:
                unknown.append(f"{path}.{key}")
            else:
                unknown += _unknown_keys(value, known[key], f"{path}.{key}")
        return unknown
    if isinstance(sample, list) and isinstance(known, list):
        return [
            key
            for index, (item, kept) in enumerate(zip(sample, known, strict=True))
            for key in _unknown_keys(item, kept, f"{path}[{index}]")
        ]
    return []


@pytest.mark.parametrize("path", _samples())
def test_sample_is_an_object_the_operator_writes(path: Path) -> None:
    sample = load_yaml(path)
    resource = KINDS[sample["kind"]].parse(sample)
    if resource.status is None:
        assert "status" not in sample
        return
    assert _unknown_keys(sample["status"], resource.status.to_wire(), "status") == []
    for condition in sample["status"].get("conditions", []):
        assert condition["type"] in set(ConditionType)
        assert condition["reason"] in set(Reason)


def test_continuous_training_failure_reasons_are_operator_reasons() -> None:
    script = (ARGOCD / GROUP / "ContinuousTraining" / "health.lua").read_text()
    block = re.search(r"local failure_reasons = \{(.*?)\n\}", script, flags=re.DOTALL)
    assert block is not None
    reasons = re.findall(r"^\s*(\w+) = true,$", block.group(1), flags=re.MULTILINE)
    assert reasons
    assert set(reasons) <= set(Reason)
    assert not {"Idle", "RunActive", "Triggered", "Suspended"} & set(reasons)


# --- the harness itself: it must fail what Argo CD would fail --------------------------

SANDBOX_VIOLATIONS = {
    "string library": 'return {status = "Healthy", message = string.format("%d", 1)}',
    "string method": 'return {status = "Healthy", message = ("x"):upper()}',
    "math library": 'return {status = "Healthy", message = "" .. math.floor(1.5)}',
    "undefined global": 'return {status = "Healthy", message = stauts}',
}


@pytest.mark.parametrize("script", SANDBOX_VIOLATIONS.values(), ids=list(SANDBOX_VIOLATIONS))
def test_harness_rejects_what_the_sandbox_lacks(lua: LuaHealth, script: str) -> None:
    with pytest.raises(lupa_runtime.LuaError):
        lua.evaluate(script, "violation", {})


def test_harness_rejects_leaked_globals(lua: LuaHealth) -> None:
    with pytest.raises(AssertionError, match=r"sets globals \['hs'\]"):
        lua.evaluate('hs = {status = "Healthy", message = ""}\nreturn hs', "leaky", {})


def test_harness_rejects_invalid_statuses(lua: LuaHealth) -> None:
    with pytest.raises(AssertionError, match="invalid status 'Fine'"):
        lua.evaluate('return {status = "Fine", message = ""}', "invalid", {})


def test_harness_converts_like_argocd(lua: LuaHealth) -> None:
    script = """
    local items = obj.items
    return {status = "Healthy", message = #items .. " " .. items[1] .. items[2]
      .. " " .. tostring(obj.gone) .. " " .. obj.when .. " " .. obj.n .. " " .. tostring(obj.yes)}
    """
    obj = {"items": ["a", None, "b"], "gone": None, "when": "2026-03-01T10:00:00Z", "n": 3}
    obj["yes"] = True
    assert lua.evaluate(script, "convert", obj)["message"] == "2 ab nil 2026-03-01T10:00:00Z 3 true"


# --- the generated argocd-cm patch -----------------------------------------------------


def _render_cm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_cm", ARGOCD / "render_cm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argocd_cm_patch_is_current() -> None:
    rendered = _render_cm().render(ARGOCD)
    committed = (ARGOCD / "argocd-cm-patch.yaml").read_text()
    assert committed == rendered, "stale: run `python deploy/argocd/render_cm.py`"


def test_argocd_cm_patch_holds_each_script_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"]["name"] == "argocd-cm"
    expected = {
        f"resource.customizations.health.{GROUP}_{directory.name}": (
            directory / "health.lua"
        ).read_text()
        for directory in _kind_dirs()
    }
    assert patch["data"] == expected


# --- Argo CD Applications and the GitOps examples --------------------------------------

GITOPS = sorted((ROOT / "examples" / "gitops").rglob("*.yaml"))


def test_gitops_examples_exist() -> None:
    kinds = {yaml.safe_load(path.read_text())["kind"] for path in GITOPS}
    assert {"ContinuousTraining", "ModelDeployment"} <= kinds


@pytest.mark.parametrize("path", GITOPS, ids=lambda path: str(path.relative_to(ROOT)))
def test_gitops_example_parses(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents
    for document in documents:
        resource = KINDS[document["kind"]].parse(document)
        assert resource.status is None, "the operator owns status; Git holds spec only"
        wave = resource.metadata.get("annotations", {}).get("argocd.argoproj.io/sync-wave")
        assert wave is None or re.fullmatch(r"-?\d+", wave)


def _application(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ARGOCD / name).read_text())
    assert document["apiVersion"] == "argoproj.io/v1alpha1"
    return document  # type: ignore[no-any-return]


def test_chart_application() -> None:
    app = _application("application.yaml")
    assert app["kind"] == "Application"
    assert (ROOT / app["spec"]["source"]["path"] / "Chart.yaml").is_file()
    options = app["spec"]["syncPolicy"]["syncOptions"]
    assert {"ServerSideApply=true", "CreateNamespace=true"} <= set(options)


def test_models_application() -> None:
    app = _application("models-application.yaml")
    assert app["kind"] == "Application"
    assert (ROOT / app["spec"]["source"]["path"]).is_dir()
    assert "SkipDryRunOnMissingResource=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_applicationset_generates_one_application_per_model_folder() -> None:
    appset = _application("applicationset.yaml")
    assert appset["kind"] == "ApplicationSet"
    (generator,) = appset["spec"]["generators"]
    (directories,) = generator["git"]["directories"]
    assert list(ROOT.glob(directories["path"])) == [ROOT / "examples" / "gitops" / "iris"]
    template = appset["spec"]["template"]["spec"]
    assert "SkipDryRunOnMissingResource=true" in template["syncPolicy"]["syncOptions"]
