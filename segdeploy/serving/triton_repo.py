"""A versioned Triton model repository from one segdeploy artifact, published atomically.

    REPO/NAME/config.pbtxt          backend "python": Segmenter inside Triton (the card in
    REPO/NAME/1/model.py            `parameters`), uint8 images of any size in, masks out
    REPO/NAME/1/<artifact>          (+ <artifact>.json for a plan)
    REPO/NAME_native/config.pbtxt   --native: platform onnxruntime_onnx or tensorrt_plan
    REPO/NAME_native/1/model.onnx   (or model.plan), for Triton's own GPU backends

Everything is written in a temporary folder beside REPO (not inside: Triton takes every
folder of a repository, hidden ones too, for a model, and a server starting meanwhile would
fail on it), every config is parsed against Triton's schema, and only then is each model
folder renamed into place: a failure leaves REPO as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from segdeploy.artifacts import is_plan, plan_manifest_path, read_plan_manifest
from segdeploy.errors import ArtifactError, UsageError
from segdeploy.locking import output_lock
from segdeploy.manifest import ExportInfo
from segdeploy.serving import triton_config as tc

VERSION = "1"
MODEL_PY = Path(__file__).with_name("triton_model.py")


@dataclass
class RepoOptions:
    name: str | None = None
    max_batch: int = 8
    instances: int = 1
    #: the Python model's Segmenter backend: onnxruntime | openvino | tensorrt (None: by suffix)
    backend: str | None = None
    native: bool = False
    #: native ONNX model: TensorRT execution accelerator, and FP16 in it
    tensorrt_accelerator: bool = False
    fp16: bool = False
    threads: int = 0
    queue_delay_us: int = tc.DEFAULT_QUEUE_DELAY_US
    max_image_pixels: int = 64 * 2**20
    force: bool = False


@dataclass
class Graph:
    """What the configs need to know about the artifact's graph."""

    info: ExportInfo
    channels: int
    mask_dtype: str
    inputs: list[tc.Tensor]
    outputs: list[tc.Tensor]
    batch_dynamic: bool = True

    @property
    def has_logits(self) -> bool:
        return any(t.name != "mask" for t in self.outputs)


@dataclass
class RepoResult:
    repo: Path
    models: list[Path] = field(default_factory=list)
    #: config.pbtxt files parsed against Triton's schema (False: tritonclient missing)
    checked: bool = False


def model_name(artifact: Path, name: str | None) -> str:
    """A Triton model name: the given one, or the artifact's stem with dots as '_'."""
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UsageError(f"model name {name!r} is not a plain folder name",
                             expected="letters, digits, '_', '-', '.' (first a letter or digit)")
        return name
    stem = artifact.name.split(".", 1)[0] if artifact.suffix else artifact.name
    rest = artifact.name[len(stem):].rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem + rest)


def _dims(shape: tuple[int | None, ...] | list[int]) -> tuple[int, ...]:
    return tuple(-1 if d is None or int(d) < 0 else int(d) for d in shape)


def _mask_dtype(info: ExportInfo) -> str:
    return "uint8" if info.card.num_classes < 256 else "int32"


def describe_onnx(path: Path) -> Graph:
    """Open the ONNX with Segmenter (proving it runs) and read its I/O."""
    from segdeploy.runtime import Segmenter

    with Segmenter.load(path, backend="onnxruntime", threads=1) as seg:
        ins = seg.runner.input_specs()
        outs = seg.runner.output_specs()
        graph = Graph(seg.info, seg.channels, str(seg.mask_dtype),
                      [tc.Tensor(s.name, str(s.dtype), _dims(s.shape[1:])) for s in ins.values()],
                      [tc.Tensor(s.name, str(s.dtype), _dims(s.shape[1:])) for s in outs.values()],
                      batch_dynamic=all(s.shape[0] is None for s in ins.values()))
    return graph


def describe_plan(path: Path) -> Graph:
    """A plan's I/O from its .plan.json sidecar (the plan needs TensorRT to open)."""
    manifest = read_plan_manifest(path)
    info = manifest.export
    inputs: list[tc.Tensor] = []
    outputs: list[tc.Tensor] = []
    for io in manifest.io:
        shape = list(io.get("shape", []))
        tensor = tc.Tensor(io["name"], str(io["dtype"]), _dims(shape[1:]))
        (inputs if io.get("mode") == "input" else outputs).append(tensor)
    if not inputs or not outputs:
        raise ArtifactError(f"{plan_manifest_path(path)} lists no inputs or outputs",
                            fix="rebuild the plan with `segdeploy build`")
    return Graph(info, info.card.in_channels, _mask_dtype(info), inputs, outputs,
                 batch_dynamic=all(io.get("shape", [None])[0] in (None, -1)
                                   for io in manifest.io if io.get("mode") == "input"))


def python_parameters(artifact: str, graph: Graph, backend: str,
                      options: RepoOptions) -> dict[str, str]:
    return {"artifact": artifact, "backend": backend, "channels": str(graph.channels),
            "threads": str(options.threads), "max_image_pixels": str(options.max_image_pixels),
            "segdeploy.export": tc.card_parameter(graph.info.to_dict()),
            "segdeploy.card": tc.card_parameter(graph.info.card.to_dict())}


def python_model_config(name: str, artifact: str, graph: Graph, backend: str,
                        options: RepoOptions) -> str:
    dep = tc.Deployment(name, options.max_batch, options.instances, gpu=backend == "tensorrt",
                        queue_delay_us=options.queue_delay_us)
    return tc.python_config(dep, channels=graph.channels, num_classes=graph.info.card.num_classes,
                            mask_dtype=graph.mask_dtype, logits=graph.has_logits,
                            parameters=python_parameters(artifact, graph, backend, options))


def native_model_config(name: str, graph: Graph, plan: bool, options: RepoOptions) -> str:
    if not graph.batch_dynamic:
        raise UsageError("--native needs a graph with a dynamic batch dimension",
                         fix="re-export with `segdeploy export` (dynamic batch) or drop --native")
    dep = tc.Deployment(name, options.max_batch, options.instances, gpu=True,
                        queue_delay_us=options.queue_delay_us)
    card = graph.info.card
    warmup = card.aligned_size(*card.typical_size())
    if plan:
        return tc.plan_config(dep, graph.inputs, graph.outputs, warmup=warmup)
    return tc.onnx_config(dep, graph.inputs, graph.outputs, warmup=warmup,
                          tensorrt=options.tensorrt_accelerator, fp16=options.fp16)


def _default_backend(artifact: Path, backend: str | None) -> str:
    from segdeploy.runtime.backends import backend_for

    return backend_for(artifact, backend).name


def stage_models(artifact: Path, staging: Path, name: str, options: RepoOptions) -> list[str]:
    """Write every model folder of the repository into `staging`; the folder names."""
    plan = is_plan(artifact)
    backend = _default_backend(artifact, options.backend)
    if plan and backend != "tensorrt":
        raise UsageError(f"a TensorRT plan runs on the tensorrt backend, not {backend}",
                         fix="drop --backend or pass --backend tensorrt")
    if options.fp16 and not options.tensorrt_accelerator:
        raise UsageError("--fp16 applies to the native ONNX model's TensorRT accelerator",
                         fix="add --native --tensorrt-accelerator, or drop --fp16")
    if options.tensorrt_accelerator and (plan or not options.native):
        raise UsageError("--tensorrt-accelerator applies to the native model of an .onnx",
                         fix="add --native (an .onnx), or drop it")
    graph = describe_plan(artifact) if plan else describe_onnx(artifact)
    version = staging / name / VERSION
    version.mkdir(parents=True)
    shutil.copyfile(artifact, version / artifact.name)
    if plan:
        sidecar = plan_manifest_path(artifact)
        shutil.copyfile(sidecar, version / plan_manifest_path(version / artifact.name).name)
    shutil.copyfile(MODEL_PY, version / "model.py")
    (staging / name / "config.pbtxt").write_text(
        python_model_config(name, artifact.name, graph, backend, options))
    names = [name]
    if options.native:
        native = f"{name}_native"
        (staging / native / VERSION).mkdir(parents=True)
        shutil.copyfile(artifact, staging / native / VERSION / ("model.plan" if plan
                                                                else "model.onnx"))
        (staging / native / "config.pbtxt").write_text(
            native_model_config(native, graph, plan, options))
        names.append(native)
    return names


def check_staged(staging: Path, names: list[str]) -> bool:
    """Parse every staged config.pbtxt against Triton's schema; False if it was skipped."""
    checked = True
    for n in names:
        path = staging / n / "config.pbtxt"
        checked = tc.check_config(path.read_text(), where=f"{n}/config.pbtxt") and checked
    return checked


def publish(staging: Path, repo: Path, names: list[str]) -> list[Path]:
    """Rename each staged model folder into REPO (an old one moved aside, then removed)."""
    published = []
    for n in names:
        target = repo / n
        old = staging / f".old.{n}"
        if target.exists():
            os.replace(target, old)
        os.replace(staging / n, target)
        published.append(target)
        if old.exists():
            shutil.rmtree(old)
    return published


def check_targets(repo: Path, names: list[str], force: bool) -> None:
    existing = [n for n in names if (repo / n).exists()]
    if existing and not force:
        raise UsageError(f"{repo / existing[0]} already exists",
                         expected="a repository without a model of this name",
                         fix="pass --force to replace it, or --name for another name")


def staging_folder(repo: Path, name: str) -> Path:
    """A temporary folder beside `repo` on its file system (renames are atomic only within
    one); inside it only when `repo` is a mount point or its parent is read-only."""
    parent = repo.resolve().parent
    if os.access(parent, os.W_OK) and parent.stat().st_dev == repo.stat().st_dev:
        return Path(tempfile.mkdtemp(prefix=f".{repo.name}.{name}.", suffix=".tmp", dir=parent))
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=repo))


def write_repository(artifact: str | os.PathLike[str], repo: str | os.PathLike[str],
                     options: RepoOptions | None = None) -> RepoResult:
    """Write (or with `force` replace) the model folders of `artifact` in `repo`."""
    options = options or RepoOptions()
    artifact, repo = Path(artifact), Path(repo)
    if not artifact.is_file():
        raise ArtifactError(f"model file {artifact} does not exist",
                            fix="pass an .onnx from `segdeploy export` / `quantize` or a "
                                ".plan from `segdeploy build`")
    if options.max_batch < 1 or options.instances < 1:
        raise UsageError("--max-batch and --instances must be at least 1")
    if repo.exists() and not repo.is_dir():
        raise UsageError(f"{repo} is a file", expected="a folder for the model repository")
    name = model_name(artifact, options.name)
    names = [name] + ([f"{name}_native"] if options.native else [])
    repo.mkdir(parents=True, exist_ok=True)
    check_targets(repo, names, options.force)
    with output_lock(repo / name):
        staging = staging_folder(repo, name)
        try:
            stage_models(artifact, staging, name, options)
            checked = check_staged(staging, names)
            check_targets(repo, names, options.force)  # another writer since the first check
            models = publish(staging, repo, names)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return RepoResult(repo, models, checked)
