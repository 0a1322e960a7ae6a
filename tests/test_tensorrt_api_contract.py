"""Every TensorRT name our code uses exists in the real TensorRT 10.x and 11.x Python bindings.

TensorRT cannot be imported here (no GPU, no libraries), but NVIDIA's binding wheels
(`tensorrt-cu12-bindings`, `tensorrt-cu13-bindings`, ~1.3 MB) install from PyPI. Their
extension module registers every class, enum member, method and property with a C string,
so the strings in `tensorrt.so` (plus the names its `__init__.py` defines) are the API.

The checker AST-parses our TensorRT code and collects:
- `trt.X`, `trt.X.Y` chains (the module is always named `trt`),
- attributes and methods used on TensorRT objects, recognised by variable name
  (TRT_OBJECTS: `builder`, `config`, `engine`, `self._engine`, `state.context`, ...),
- `getattr(obj, "literal")` on those, and the methods of classes that subclass `trt.X`
  (IProgressMonitor.phase_start, ILogger.log).
Code in a function decorated `@trt_only(min_version=..., below=...)` is checked only
against bindings in that range: that is how 8.x-only names (BuilderFlag.FP16,
EXPLICIT_BATCH) stay out of the >= 10 path. `hasattr` on TensorRT is forbidden outright
(a `hasattr` probe once built FP32 engines silently).

A name counts as present when it is one of the strings, or the tail of a longer identifier
or qualified C++ name (`nvinfer1::DataType`): the linker merges a string into the tail of
another one ("serialize" lives inside "deserialize").

Wheels come from $SEGDEPLOY_TRT_WHEELS or .venv/trt-wheels (`make` fetches them); missing
ones are downloaded here, and the tests skip with the reason only if that fails.
"""

from __future__ import annotations

import ast
import bisect
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: (package, version): the oldest 10.x on Jetson (JetPack 6.1/6.2), the newest 10.x, the first
#: and the newest 11.x. Keep in step with the Makefile.
WHEELS = (("tensorrt-cu12-bindings", "10.3.0"), ("tensorrt-cu12-bindings", "10.16.1.11"),
          ("tensorrt-cu12-bindings", "11.0.0.114"), ("tensorrt-cu13-bindings", "11.4.0.106"))
#: variable (or attribute) names that hold TensorRT objects in our code
TRT_OBJECTS = {"builder", "network", "config", "parser", "parser_error", "profile", "runtime",
               "engine", "context", "inspector", "timing_cache"}
#: Python's own names, which the bindings need not spell out
PYTHON_NAMES = {"__init__": "constructor of a TensorRT base class we subclass",
                "__class__": "every object's class", "__name__": "every class's name",
                "__doc__": "every object's docstring"}
#: names removed with weak typing in TensorRT 11: only ever used under @trt_only(below=(10, 0))
WEAK_TYPING = {"FP16", "EXPLICIT_BATCH"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------- the checker

@dataclass(frozen=True)
class Use:
    name: str
    where: str
    min_version: tuple[int, int] = (0, 0)
    below: tuple[int, int] | None = None

    def applies_to(self, version: tuple[int, int]) -> bool:
        return self.min_version <= version and (self.below is None or version < self.below)


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node


def _is_trt_chain(node: ast.expr) -> bool:
    root = _root(node)
    return isinstance(root, ast.Name) and root.id == "trt"


def _is_trt_object(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else \
        node.attr if isinstance(node, ast.Attribute) else None
    return name is not None and name.lstrip("_") in TRT_OBJECTS


def _gate(decorators: list[ast.expr]) -> tuple[tuple[int, int], tuple[int, int] | None] | None:
    for deco in decorators:
        if isinstance(deco, ast.Call):
            func = deco.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "trt_only":
                kw = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}
                return tuple(kw.get("min_version", (0, 0))), (
                    tuple(kw["below"]) if kw.get("below") is not None else None)
    return None


class TrtNameCollector(ast.NodeVisitor):
    """Collects `Use`s of TensorRT names and `hasattr` probes from one module."""

    def __init__(self, label: str):
        self.label = label
        self.uses: list[Use] = []
        self.hasattr_probes: list[str] = []
        self._gates: list[tuple[tuple[int, int], tuple[int, int] | None]] = [((0, 0), None)]

    def _add(self, name: str, node: ast.AST) -> None:
        lo, hi = self._gates[-1]
        self.uses.append(Use(name, f"{self.label}:{getattr(node, 'lineno', '?')}", lo, hi))

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        gate = _gate(node.decorator_list)
        if gate is not None:  # nested gates narrow the range
            lo, hi = self._gates[-1]
            new_hi = gate[1] if hi is None else (hi if gate[1] is None else min(hi, gate[1]))
            self._gates.append((max(lo, gate[0]), new_hi))
        self.generic_visit(node)
        if gate is not None:
            self._gates.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if any(_is_trt_chain(base) for base in node.bases):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._add(item.name, item)  # overrides must be TensorRT's callbacks
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_trt_chain(node.value) or _is_trt_object(node.value):
            self._add(node.attr, node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr") and node.args:
            target = node.args[0]
            if _is_trt_chain(target) or _is_trt_object(target):
                if func.id == "hasattr":
                    self.hasattr_probes.append(f"{self.label}:{node.lineno}")
                elif len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    self._add(str(node.args[1].value), node)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "tensorrt":
            for alias in node.names:
                self._add(alias.name, node)
        self.generic_visit(node)


def collect(source: str, label: str) -> TrtNameCollector:
    collector = TrtNameCollector(label)
    collector.visit(ast.parse(source))
    return collector


class Bindings:
    """The names one TensorRT bindings wheel provides."""

    def __init__(self, version: str, so_bytes: bytes, init_source: str):
        self.version = version
        self.key = tuple(int(p) for p in version.split(".")[:2])
        self.strings = {m.decode() for m in re.findall(rb"[\x20-\x7e]{2,}", so_bytes)}
        self._reversed = sorted(s[::-1] for s in self.strings)
        self.init_names = _defined_names(init_source)

    @cache  # noqa: B019 - a handful of long-lived instances
    def has(self, name: str) -> bool:
        if name in self.strings or name in self.init_names:
            return True
        rev = name[::-1]
        i = bisect.bisect_left(self._reversed, rev)
        while i < len(self._reversed) and self._reversed[i].startswith(rev):
            host = self._reversed[i][::-1]
            if re.match(r"[A-Za-z0-9_:.]", host[-len(name) - 1]):  # a tail-merged string
                return True
            i += 1
        return False


def _defined_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return names


def missing_names(uses: list[Use], bindings: Bindings) -> list[str]:
    return sorted({f"{u.name} ({u.where})" for u in uses if u.applies_to(bindings.key)
                   and u.name not in PYTHON_NAMES and not bindings.has(u.name)})


# ------------------------------------------------------------------- our code and the wheels

def tensorrt_sources() -> list[Path]:
    paths = sorted((REPO / "segdeploy/engine").glob("*.py"))
    paths += sorted((REPO / "segdeploy/runtime").glob("tensorrt_*.py"))
    return sorted({p for p in paths if p.is_file()})


def our_uses() -> tuple[list[Use], list[str]]:
    uses, probes = [], []
    for path in tensorrt_sources():
        found = collect(path.read_text(), str(path.relative_to(REPO)))
        uses += found.uses
        probes += found.hasattr_probes
    return uses, probes


def _wheel_dir() -> Path:
    return Path(os.environ.get("SEGDEPLOY_TRT_WHEELS") or REPO / ".venv" / "trt-wheels")


def fetch_wheel(package: str, version: str) -> Path:
    folder = _wheel_dir()
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    found = sorted(folder.glob(pattern))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
               "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
               "-d", str(folder), f"{package}=={version}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot download {package}=={version}: {exc}")
        found = sorted(folder.glob(pattern))
        if not found:
            pytest.skip(f"cannot download {package}=={version} from PyPI: "
                        f"{(done.stderr or done.stdout).strip()[-300:]}")
    return found[0]


@cache
def load_bindings(package: str, version: str) -> Bindings:
    with zipfile.ZipFile(fetch_wheel(package, version)) as wheel:
        names = wheel.namelist()
        so = [n for n in names if re.search(r"tensorrt_bindings/tensorrt[^/]*\.(so|pyd)$", n)]
        assert so, f"no tensorrt extension module in the {package} {version} wheel: {names}"
        return Bindings(version, wheel.read(so[0]),
                        wheel.read("tensorrt_bindings/__init__.py").decode())


def _bindings(version: str) -> Bindings:
    package = next(p for p, v in WHEELS if v == version)
    return load_bindings(package, version)


# ----------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("version", [v for _, v in WHEELS])
def test_every_tensorrt_name_we_use_exists(version: str) -> None:
    uses, _ = our_uses()
    assert len({u.name for u in uses}) > 30, "the collector found too few names: is it broken?"
    missing = missing_names(uses, _bindings(version))
    assert not missing, f"not in TensorRT {version}'s Python bindings: {missing}"


def test_weak_typing_names_are_confined_to_the_8x_branch() -> None:
    uses, _ = our_uses()
    weak = [u for u in uses if u.name in WEAK_TYPING]
    assert {u.name for u in weak} == WEAK_TYPING, "the TensorRT 8.x branch should use both"
    leaking = [u.where for u in weak if u.below is None or u.below > (10, 0)]
    assert not leaking, f"BuilderFlag.FP16 / EXPLICIT_BATCH outside @trt_only(below=(10, 0)): " \
                        f"{leaking}"
    oldest_10 = _bindings("10.3.0")  # both still existed (deprecated) in 10.x: real names
    assert all(oldest_10.has(name) for name in WEAK_TYPING)


def test_tensorrt_11_really_dropped_weak_typing() -> None:
    newest = _bindings("11.4.0.106")
    for name in WEAK_TYPING | {"platform_has_fast_fp16"}:
        assert not newest.has(name), f"{name} is still in the TensorRT 11.4 bindings"
    assert newest.has("STRONGLY_TYPED") and newest.has("IProgressMonitor")
    # the reason for @trt_only(min_version=(10, 9)) on --hardware-compatibility same-cc
    assert not _bindings("10.3.0").has("SAME_COMPUTE_CAPABILITY")
    assert _bindings("10.16.1.11").has("SAME_COMPUTE_CAPABILITY")


def test_no_hasattr_probe_on_tensorrt() -> None:
    _, probes = our_uses()
    assert not probes, f"branch on the parsed trt.__version__, not hasattr: {probes}"


def test_every_module_that_imports_tensorrt_is_checked() -> None:
    scanned = set(tensorrt_sources())
    importers = {p for p in (REPO / "segdeploy").rglob("*.py")
                 if re.search(r"^\s*import tensorrt\b|require\(\s*[\"']tensorrt[\"']",
                              p.read_text(), re.M)}
    assert importers, "no module imports tensorrt: the scan would be empty"
    assert importers <= scanned, f"not scanned by this test: {sorted(importers - scanned)}"


SNIPPET = '''
import tensorrt as trt

class Monitor(trt.IProgressMonitor):
    def __init__(self):
        trt.IProgressMonitor.__init__(self)
    def phase_start(self, phase_name, parent_phase, num_steps):
        pass

def build(trt, builder, network):
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    self_engine = getattr(builder, "build_serialized_network")
    if builder.platform_has_fast_fp16:
        pass
    return self._engine.num_io_tensors

@trt_only(below=(10, 0))
def weak_trt8(trt, config):
    config.set_flag(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
'''


def test_collector_finds_chains_objects_getattr_and_overrides() -> None:
    found = collect(SNIPPET, "snippet")
    names = {u.name for u in found.uses}
    assert {"IProgressMonitor", "phase_start", "create_builder_config", "set_flag", "BuilderFlag",
            "FP16", "build_serialized_network", "platform_has_fast_fp16",
            "num_io_tensors"} <= names
    gated = {u.name: (u.min_version, u.below) for u in found.uses if u.below is not None}
    assert gated == {"set_flag": ((0, 0), (10, 0)), "NetworkDefinitionCreationFlag": ((0, 0),
                     (10, 0)), "EXPLICIT_BATCH": ((0, 0), (10, 0))}
    assert "self_engine" not in names and "builder" not in names


def test_checker_fails_fp16_on_the_strongly_typed_path() -> None:
    """BuilderFlag.FP16 outside the 8.x branch must fail against TensorRT 11's bindings."""
    found = collect(SNIPPET, "snippet")
    missing = missing_names(found.uses, _bindings("11.4.0.106"))
    assert any(m.startswith("FP16 (snippet:") for m in missing), missing
    assert any(m.startswith("platform_has_fast_fp16 ") for m in missing), missing
    assert not any(m.startswith("EXPLICIT_BATCH") for m in missing), "gated to 8.x: not checked"
    assert not any(m.startswith(("phase_start", "IProgressMonitor", "__init__")) for m in missing)
    probe = collect("def f(trt):\n    return hasattr(trt.BuilderFlag, 'FP16')\n", "probe")
    assert probe.hasattr_probes == ["probe:2"]
