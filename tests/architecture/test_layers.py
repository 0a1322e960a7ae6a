"""The import direction, enforced: every edge between the package's parts (lazy imports
included) must be allowed by the table below, which docs/ARCHITECTURE.md shows.

    entry (cli, demo, __main__)
      -> commands (bench, verify, engine, export, training)
        -> libraries (runtime, reference_models, data)
          -> core (manifest, artifacts, comparison, metrics, errors, ...)

A part may import its own modules and any lower layer; between two parts of one layer only
the edges listed in SIDEWAYS are allowed. A new top-level module or package must be given a
layer here, so that its place is decided, not found.
"""

from __future__ import annotations

from pathlib import Path

from test_import_graph import PACKAGE, all_modules, imports_of

LAYERS: dict[str, int] = {
    **dict.fromkeys(("__main__", "cli", "demo"), 3),
    **dict.fromkeys(("bench", "verify", "engine", "export", "training", "serving", "video",
                     "scale", "crf_tuning"), 2),
    **dict.fromkeys(("runtime", "reference_models", "data", "reports"), 1),
    **dict.fromkeys(("segdeploy", "artifact_kind", "onnx_wire", "artifacts", "atomic",
                     "comparison", "digest", "dims", "overlays",
                     "errors", "fieldcheck", "geometry", "geotiff", "imaging", "locking",
                     "interleave", "machine", "manifest", "metrics", "onnx_metadata",
                     "onnx_precision",
                     "precision", "volumes"), 0),
}
#: allowed edges between two parts of one layer (core modules import each other freely)
SIDEWAYS: dict[str, set[str]] = {
    "engine": {"export"},     # TensorRT 8.x builds FP16 from the FP32 ONNX: export.fp16
    "__main__": {"cli"},      # `python -m segdeploy`
}
#: single module edges against the layers, each with its reason
ALLOWED_EDGES: dict[tuple[str, str], str] = {
    ("segdeploy.runtime.segmenter", "segdeploy.serving.triton_client"):
        'Segmenter.load("triton://...") returns the remote client (imported lazily)',
}


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every edge against the table, as 'a -> b (why)'."""
    found = []
    for name, deps in sorted(graph.items()):
        src = part(name)
        for dep in sorted(deps):
            dst = part(dep)
            if src == dst or (name, dep) in ALLOWED_EDGES:
                continue
            if src not in LAYERS or dst not in LAYERS:
                unknown = src if src not in LAYERS else dst
                found.append(f"{name} -> {dep} ({unknown!r} has no layer in test_layers.py)")
            elif LAYERS[dst] > LAYERS[src]:
                found.append(f"{name} -> {dep} (imports upwards: {src} is below {dst})")
            elif LAYERS[dst] == LAYERS[src] > 0 and dst not in SIDEWAYS.get(src, set()):
                found.append(f"{name} -> {dep} ({src} -> {dst} is not in SIDEWAYS)")
    return found


def package_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_the_check_sees_a_wrong_edge_and_a_lazy_one(tmp_path: Path) -> None:
    assert violations({"segdeploy.runtime.x": {"segdeploy.reference_models.y"}}) == [
        "segdeploy.runtime.x -> segdeploy.reference_models.y "
        "(runtime -> reference_models is not in SIDEWAYS)"]
    assert violations({"segdeploy.artifacts": {"segdeploy.runtime.segmenter"}})[0].endswith(
        "(imports upwards: artifacts is below runtime)")
    assert "no layer" in violations({"segdeploy.newpart.m": {"segdeploy.errors"}})[0]
    # a lazy import inside a function is an edge like any other
    src = tmp_path / "quantize.py"
    src.write_text("def f():\n    from segdeploy.verify.parity import Thresholds\n")
    modules = {"segdeploy.export.quantize": src, "segdeploy.verify.parity": src}
    deps = imports_of("segdeploy.export.quantize", src, modules)
    assert deps == {"segdeploy.verify.parity"}
    assert violations({"segdeploy.export.quantize": deps}) == [
        "segdeploy.export.quantize -> segdeploy.verify.parity (export -> verify is not in "
        "SIDEWAYS)"]


def test_every_import_follows_the_layers() -> None:
    found = violations(package_graph())
    assert not found, "imports against the layer table:\n" + "\n".join(found)


def test_every_part_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    parts = {("segdeploy" if p == "__init__" else p) for p in parts}
    assert parts <= set(LAYERS), f"no layer for {sorted(parts - set(LAYERS))}"
