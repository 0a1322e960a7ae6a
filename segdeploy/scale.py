"""Datasets at scale: an actor pool of Segmenters on Ray Data (`pip install 'segdeploy[ray]'`).

    from segdeploy.scale import predict_on_ray
    report = predict_on_ray("model.onnx", ["images/"], "masks/")         # a local cluster
    report = predict_on_ray("model.plan", ["list.txt"], "masks/", address="auto")
    report.failures                                                       # [(path, error)]

Each actor loads the model once and segments its batches through `Segmenter.stream`
(decode ahead, write behind); every mask is written atomically as OUT/STEM.png, so a run that
stops half way is resumed by running it again: images whose mask exists are skipped. An
image that fails (corrupt, too large) is listed, never fatal. Ray is imported lazily; a
local cluster is started on 127.0.0.1 only (no dashboard, no usage stats; every Ray server
listens on loopback) and shut down after.

On an existing cluster (`address=`), every node needs segdeploy installed and the model and
the images at the same paths (shared storage): actors open them by path.

Pool sizing: Ray Data's read and split tasks need CPU too; actors holding every CPU leave
them none and the job hangs silently (two actors at num_cpus=1 on a 2-CPU machine do).
`plan_pool` gives the actors fractional CPUs that always leave one CPU free.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from segdeploy.errors import UsageError, require

#: what a folder given to predict_on_ray yields (besides the images, lists: *.txt)
SCALE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class PoolPlan:
    actors: int
    num_cpus: float  # per actor
    threads: int  # ONNX Runtime / OpenVINO threads per actor


def plan_pool(cluster_cpus: float, actors: int | None = None) -> PoolPlan:
    """Actors and their CPU share, so that at least one CPU (or half of a 1-CPU machine)
    stays free for Ray Data's own tasks."""
    if cluster_cpus <= 0:
        raise UsageError("the Ray cluster has no CPU", expected="at least one CPU")
    spare = 1.0 if cluster_cpus >= 2 else cluster_cpus / 2
    budget = cluster_cpus - spare
    if actors is None:
        actors = max(1, int(budget))
    if actors < 1:
        raise UsageError(f"actors={actors}", expected="at least 1")
    share = min(1.0, budget / actors)
    return PoolPlan(actors, round(share, 3), max(1, int(share)))


@dataclass
class ScaleReport:
    """What a run did: masks written now, skipped (already there), and the failures."""

    out: Path
    total: int
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    plan: PoolPlan | None = None

    @property
    def images_per_s(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        text = (f"wrote {self.written} masks to {self.out} ({self.images_per_s:.1f} images/s"
                f"{f', {self.plan.actors} actors' if self.plan else ''}), skipped "
                f"{self.skipped} already done")
        if self.failures:
            text += f"; {len(self.failures)} failed (listed in {self.out / 'failures.json'}): "
            text += ", ".join(Path(p).name for p, _ in self.failures[:5])
        return text


def list_images(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image paths from folders (their images, sorted), files and .txt lists (a path a
    line, relative to the list). No header check: an unreadable image is a failure later."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in SCALE_SUFFIXES))
        elif path.is_file() and path.suffix.lower() == ".txt":
            lines = [s.strip() for s in path.read_text().splitlines()]
            found.extend(path.parent / s for s in lines if s and not s.startswith("#"))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path} does not exist",
                             expected="an image, a folder of images or a .txt list")
    if not found:
        raise UsageError("no images to segment", expected="images, folders or .txt lists")
    return found


def mask_targets(images: Sequence[Path], out: Path) -> list[Path]:
    """`out/STEM.png` for every image; two images that would write one mask are refused."""
    targets = [out / f"{p.stem}.png" for p in images]
    seen: dict[Path, Path] = {}
    for image, target in zip(images, targets, strict=True):
        if target in seen:
            raise UsageError(f"{seen[target]} and {image} would both write {target}",
                             fix="segment them into different output folders (separate "
                                 "runs, different -o)")
        seen[target] = image
    return targets


class SegmentActor:
    """One Ray actor: a Segmenter loaded once; a batch of (path, out) rows -> status rows."""

    def __init__(self, engine: str, options: dict[str, Any]) -> None:
        from segdeploy.runtime import Segmenter

        self.seg = Segmenter.load(engine, **options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from segdeploy.imaging import load_image, save_mask_png
        from segdeploy.runtime.stream import Frame

        seg = self.seg
        paths, outs = [str(p) for p in batch["path"]], [str(o) for o in batch["out"]]
        errors = [""] * len(paths)
        frames = (Frame(partial(load_image, p, channels=seg.channels, intensity=seg.intensity),
                        meta=i) for i, p in enumerate(paths))
        for result in seg.stream(frames, workers=2, prefetch=2).results():
            if result.mask is not None:
                try:
                    save_mask_png(outs[result.meta], result.mask)
                except Exception as exc:  # noqa: BLE001 - listed, never fatal
                    errors[result.meta] = f"{type(exc).__name__}: {exc}"
            else:
                errors[result.meta] = result.error or "failed"
        return {"path": paths, "error": errors}


def predict_on_ray(engine: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
                   out: str | os.PathLike[str], *, address: str | None = None,
                   actors: int | None = None, batch_size: int = 16,
                   options: dict[str, Any] | None = None, console: Any = None) -> ScaleReport:
    """Segment every image into OUT/STEM.png on Ray (see the module docstring)."""
    out = Path(out)
    images = list_images(inputs)
    targets = mask_targets(images, out)
    todo = [(str(p.resolve()), str(t.resolve())) for p, t in zip(images, targets, strict=True)
            if not t.is_file()]
    report = ScaleReport(out, len(images), skipped=len(images) - len(todo))
    out.mkdir(parents=True, exist_ok=True)
    if todo:
        start = time.perf_counter()
        with ray_cluster(address) as ray:
            report.plan = plan_pool(float(ray.cluster_resources().get("CPU", 1)), actors)
            for path, error in _run(ray, str(Path(engine).resolve()), todo, report.plan,
                                    batch_size, dict(options or {})):
                if error:
                    report.failures.append((path, error))
                else:
                    report.written += 1
        report.seconds = time.perf_counter() - start
    _write_failures(report)
    return report


def _run(ray: Any, engine: str, todo: list[tuple[str, str]], plan: PoolPlan,
         batch_size: int, options: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, error or "") of every image, from the actor pool."""
    options.setdefault("threads", plan.threads)
    items = [{"path": p, "out": o} for p, o in todo]
    per_actor = max(1, len(items) // (plan.actors * 2))
    dataset = ray.data.from_items(items).map_batches(
        SegmentActor, fn_constructor_kwargs={"engine": engine, "options": options},
        compute=ray.data.ActorPoolStrategy(size=plan.actors), num_cpus=plan.num_cpus,
        batch_size=min(batch_size, per_actor), batch_format="numpy")
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        yield from zip((str(p) for p in batch["path"]), (str(e) for e in batch["error"]),
                       strict=True)


def _write_failures(report: ScaleReport) -> None:
    from segdeploy.atomic import write_json_atomic

    path = report.out / "failures.json"
    if report.failures:
        write_json_atomic(path, [{"path": p, "error": e} for p, e in report.failures])
    elif path.exists():
        path.unlink()  # an earlier run's list, now all done


def is_loopback(address: str) -> bool:
    """Whether a Ray address ("127.0.0.1:6379", "ray://localhost:10001") is this machine's
    loopback."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class ray_cluster:  # noqa: N801 - used as a context manager, like contextlib's
    """Connect to `address` (and disconnect after), or start a local cluster on 127.0.0.1 and
    shut it down after."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = False

    def __enter__(self) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        loopback = self.address is None or is_loopback(self.address)
        if loopback:
            # Ray binds its servers to (and resolves 127.0.0.1 addresses into) the machine's
            # outward address unless it thinks it runs on a laptop: this switch, read when ray
            # is imported, here and in every Ray process, keeps a local cluster on 127.0.0.1.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray = require("ray", extra="ray", purpose="for predict --ray / segdeploy.scale")
        require("ray.data", extra="ray", package="ray[data]")
        if ray.is_initialized():
            return ray
        constants = sys.modules.get("ray._private.ray_constants")
        if loopback and constants is not None:  # ray was imported before the switch was set
            setattr(constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 - not typed
        if self.address is None:
            # address="local": a new cluster, never one that /tmp/ray/ray_current_cluster
            # names (a head killed without cleanup leaves it behind, and init would wait on it)
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                     configure_logging=False, log_to_driver=False)
        else:
            ray.init(address=self.address, log_to_driver=False)
        self.started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        return ray

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()
