"""The files `segdeploy benchmark` times, made with the project's own commands or reused.

    OUT/NAME.onnx, NAME.fp16.onnx     segdeploy export (one run, parity-checked)
    OUT/NAME.int8.onnx                segdeploy quantize (QDQ, uint8 activations: CPUs)
    OUT/NAME.int8-trt.onnx            segdeploy quantize --symmetric (TensorRT's QDQ)
    OUT/NAME.fp16.plan, .int8.plan    segdeploy build (only where TensorRT and a GPU are)

A file is reused when its metadata names this checkpoint (source sha256, as `segdeploy
build` and `verify` compare) with the same export options, and a derived file is newer than
the one it came from; anything else is made again. A step that fails leaves its reason (one
line) for the rows that needed it, and the other steps go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segdeploy.bench.formats import ARTIFACTS
from segdeploy.errors import SegdeployError, first_line

#: what each artifact is made from
SOURCE = {"fp16": "fp32", "int8": "fp32", "int8-trt": "fp32", "plan-fp16": "fp16",
          "plan-int8": "int8-trt"}


@dataclass(frozen=True)
class MakeOptions:
    """How the artifacts are made: export options (the reuse check compares them too)."""

    data: str
    opset: int = 18
    with_argmax: bool = False
    argmax_dtype: str | None = None
    calibration_images: int = 32
    threads: int | None = None
    reuse: bool = True


@dataclass
class Artifacts:
    """Paths of the artifacts made or reused, and the reason of those that could not be."""

    paths: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)


def needed_for(artifacts: Iterable[str]) -> list[str]:
    """The artifacts asked for plus everything they are made from, in making order."""
    want: set[str] = set()
    for key in artifacts:
        while key:
            want.add(key)
            key = SOURCE.get(key, "")
    return [k for k in ARTIFACTS if k in want]


class ArtifactMaker:
    """Makes (or reuses) the artifacts of one checkpoint in one folder."""

    def __init__(self, checkpoint: Path, folder: Path, options: MakeOptions,
                 say: Callable[[str], None] = lambda _: None) -> None:
        from segdeploy.digest import sha256_file

        self.checkpoint, self.folder, self.options, self.say = (checkpoint, folder, options,
                                                                say)
        self.sha256 = sha256_file(checkpoint)
        self.stem = checkpoint.name.removesuffix(checkpoint.suffix)
        self.result = Artifacts()

    def path(self, key: str) -> Path:
        return self.folder / f"{self.stem}{ARTIFACTS[key]}"

    def make(self, keys: Iterable[str], on_step: Callable[[], None] = lambda: None
             ) -> Artifacts:
        """Every artifact in `keys` and their sources; one `on_step` per artifact."""
        for key in needed_for(keys):
            if key in self.result.paths or key in self.result.failed:
                on_step()
                continue
            source = SOURCE.get(key)
            if source is not None and source in self.result.failed:
                self.result.failed[key] = (f"needs {self.path(source).name}, which could not "
                                           "be made")
            else:
                self._one(key)
            on_step()
        return self.result

    def _one(self, key: str) -> None:
        path = self.path(key)
        if self.options.reuse and self.up_to_date(key):
            self.result.paths[key] = path
            self.result.reused.add(key)
            return
        maker = {"fp32": self._export, "fp16": self._export, "int8": self._quantize,
                 "int8-trt": self._quantize, "plan-fp16": self._build,
                 "plan-int8": self._build}[key]
        try:
            maker(key)
        except SegdeployError as exc:
            self.result.failed[key] = first_line(exc, limit=200)

    # ------------------------------------------------------------------ reuse

    def up_to_date(self, key: str) -> bool:
        """The file exists, names this checkpoint and these export options, and is not
        older than its source."""
        path = self.path(key)
        if not path.is_file():
            return False
        from segdeploy.artifacts import read_export_info

        try:
            info = read_export_info(path)
        except SegdeployError:
            return False
        from segdeploy.export.onnx_export import mask_dtype_for

        opts = self.options
        same = (info.source_sha256 == self.sha256 and info.argmax_in_graph == opts.with_argmax
                and (not opts.with_argmax or info.mask_dtype == mask_dtype_for(
                    opts.argmax_dtype, info.card.num_classes)))
        if key in ("fp32", "fp16"):
            same = same and info.opset == opts.opset
        source = SOURCE.get(key)
        if source is not None and self.path(source).is_file():
            same = same and path.stat().st_mtime >= self.path(source).stat().st_mtime
        if key.startswith("plan-") and same:
            same = self._plan_matches(path, self.path(SOURCE[key]))
        return same

    @staticmethod
    def _plan_matches(plan: Path, onnx: Path) -> bool:
        from segdeploy.artifacts import read_plan_manifest
        from segdeploy.digest import sha256_file

        try:
            return onnx.is_file() and read_plan_manifest(plan).onnx_sha256 == sha256_file(onnx)
        except SegdeployError:
            return False

    # ------------------------------------------------------------------ making

    def _export(self, key: str) -> None:
        """FP32 and FP16 in one `segdeploy export` run; when it fails, the FP32 alone once
        more (an FP16 parity failure leaves the FP32 graph usable)."""
        from segdeploy.export import ExportOptions, run_export

        self.say("exporting FP32 + FP16 ONNX")
        opts = self.options
        base: dict[str, Any] = dict(output=str(self.path("fp32")), opset=opts.opset,
                                    with_argmax=opts.with_argmax,
                                    argmax_dtype=opts.argmax_dtype, data=opts.data)
        try:
            run_export(self.checkpoint, ExportOptions(**base))
        except SegdeployError as exc:
            self.result.failed["fp16"] = first_line(exc, limit=200)
            self.say("exporting FP32 ONNX alone")
            run_export(self.checkpoint, ExportOptions(**base, fp16=False))
            self.result.paths["fp32"] = self.path("fp32")
            return
        self.result.paths.update(fp32=self.path("fp32"), fp16=self.path("fp16"))

    def _quantize(self, key: str) -> None:
        from segdeploy.export.quantize import QuantizeOptions, quantize_model

        symmetric = key == "int8-trt"
        self.say("quantizing to INT8" + (" (symmetric, for TensorRT)" if symmetric else ""))
        # allow_slower: this table times every format itself, so an INT8 file slower than
        # FP32 here is a row that shows it, not a file quantize refuses to write
        quantize_model(self.result.paths["fp32"], QuantizeOptions(
            data=self.options.data, output=self.path(key), symmetric=symmetric,
            calibration_images=self.options.calibration_images,
            threads=self.options.threads, allow_slower=True))
        self.result.paths[key] = self.path(key)

    def _build(self, key: str) -> None:
        from segdeploy.engine import BuildRequest, build_engine
        from segdeploy.precision import Precision

        self.say(f"building a TensorRT {key.removeprefix('plan-').upper()} engine")
        precision = Precision.INT8 if key == "plan-int8" else Precision.FP16
        build_engine(BuildRequest(onnx_path=self.result.paths[SOURCE[key]],
                                  output=self.path(key), precision=precision,
                                  show_progress=False))
        self.result.paths[key] = self.path(key)
