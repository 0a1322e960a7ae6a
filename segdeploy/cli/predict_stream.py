"""The pipelined branches of `segdeploy predict`: folders through `Segmenter.stream`, videos
and live sources (PNG per frame, an FFV1 mask video, an overlay video, a JSON of timings
and class shares), and `--ray` (segdeploy.scale). Imports happen inside the functions;
cli/predict.py passes its helpers in (it imports this module, not the reverse)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segdeploy.errors import InputError, UsageError


def frame_progress(console: Any, total: int | None) -> Any:
    """A rich progress bar that shows frames/s (live sources: no total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TextColumn("{task.fields[fps]:.1f} frames/s"),
                    console=console, transient=True, disable=total is not None and total < 2)


def stream_threads(engine: str, backend: str | None, threads: int | None, streaming: bool
                   ) -> tuple[int | None, int]:
    """(threads for Segmenter.load, inference workers): a stream on ONNX Runtime without
    --threads runs two inferences at once with the cores split (runtime.stream.cpu_split);
    TensorRT overlaps copies itself and OpenVINO's runner has a single infer request."""
    from segdeploy.runtime.auto_backend import is_auto, openvino_candidate
    from segdeploy.runtime.backends import backend_for
    from segdeploy.runtime.stream import cpu_split

    if is_auto(backend) and openvino_candidate(Path(engine), None):
        return threads, 1  # it may run on OpenVINO: one infer request
    spec = backend_for(Path(engine), None if is_auto(backend) else backend)
    if not streaming or threads is not None or spec.name != "onnxruntime":
        return threads, 1
    return cpu_split()


def predict_folder(seg: Any, images: list[Path], targets: list[Path],
                   overlays: list[Path] | None, save_overlay: Callable[..., None],
                   console: Any, infer_workers: int = 1,
                   failures: list[tuple[Path, str]] | None = None) -> list[dict[str, Any]]:
    """Decode in worker threads, infer back to back, write behind: the masks of the
    one-at-a-time loop. An image that fails is added to `failures` and the run goes on
    (without a list, it stops the run). `overlays`: where `save_overlay(path, image,
    mask)` writes each image's overlay (None: no overlays). One record per mask written."""
    from segdeploy.cli.predict_report import image_record
    from segdeploy.imaging import load_image, save_mask_png
    from segdeploy.runtime.stream import Frame, WriteBehind

    overlay = overlays is not None

    def reader(path: Path) -> Callable[[], Any]:
        return lambda: load_image(path, channels=seg.channels, intensity=seg.intensity)

    frames = (Frame(reader(src), meta=(src, dst, over))
              for src, dst, over in zip(images, targets, overlays or targets, strict=True))
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    with (frame_progress(console, len(images)) as bar, WriteBehind() as writer,
          seg.stream(frames, keep_images=overlay, infer_workers=infer_workers) as stream):
        task = bar.add_task("predict", total=len(images), fps=0.0)
        last = start
        for n, result in enumerate(stream.results(), 1):
            src, dst, over = result.meta
            now = time.perf_counter()
            bar.update(task, advance=1, fps=n / max(now - start, 1e-9))
            if result.mask is None:
                if failures is None:
                    raise InputError(f"cannot segment {src}: {result.error}",
                                     fix="remove it from the inputs or convert it")
                failures.append((src, str(getattr(result.error, "what", result.error))))
                continue
            writer.submit(save_mask_png, str(dst), result.mask)
            if overlay:
                writer.submit(save_overlay, over, result.image, result.mask)
            records.append(image_record(src, dst, result.mask, now - last, seg.num_classes))
            last = now
    return records


def video_targets(out: Path, overlay: bool, overlay_to: str | None
                  ) -> tuple[Path | None, Path | None]:
    """(mask video or None for PNGs in the folder `out`, overlay video or None)."""
    from segdeploy.video import is_video

    if is_video(out) and out.suffix.lower() != ".mkv":
        raise UsageError(f"-o {out}: masks are written losslessly",
                         expected="a folder (one PNG per frame) or NAME.mkv (FFV1)",
                         fix="use -o masks/ or -o masks.mkv; --overlay writes a watchable "
                             "video")
    if out.exists() and not out.is_dir() and not is_video(out):
        raise UsageError(f"-o {out} is a file", expected="a folder or NAME.mkv")
    mask_video = out if is_video(out) else None
    if overlay_to is not None:
        return mask_video, Path(overlay_to)
    if not overlay:
        return mask_video, None
    return mask_video, (out.with_suffix(".overlay.mp4") if mask_video else out / "overlay.mp4")


def predict_video(seg: Any, source: str, out: Path, *, overlay: bool,
                  overlay_to: str | None, json_path: str | None, console: Any,
                  made_folder: Callable[[Path, bool], Any], infer_workers: int = 1) -> None:
    """Every frame of a video file, camera or stream: masks (PNGs or FFV1), an overlay
    video with the original timing, a JSON of per-frame pts and class shares. A frame that
    does not decode is reported by index; the others are written."""
    from segdeploy.video import VideoReader

    mask_video, overlay_video = video_targets(out, overlay, overlay_to)
    folder = out.parent if mask_video else out
    with VideoReader(source, channels=seg.channels) as reader, made_folder(folder, False):
        writers = _video_writers(reader.info, mask_video, overlay_video)
        try:
            frames, errors = _run_video(seg, reader, folder if mask_video is None else None,
                                        writers, console, infer_workers)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.close()
    if json_path is not None:
        from segdeploy.atomic import write_json_atomic

        write_json_atomic(json_path, {"source": source, "classes": seg.classes,
                                      "time_base": str(reader.info.time_base),
                                      "frames": frames, "errors": errors})
    where = ", ".join(str(p) for p in (mask_video or out, overlay_video) if p is not None)
    failed = f"; {len(errors)} frame(s) failed: " + ", ".join(
        str(e["index"]) for e in errors) if errors else ""
    console.print(f"wrote {len(frames)} frame masks to {where}{failed}", highlight=False)


def _video_writers(info: Any, mask_video: Path | None, overlay_video: Path | None
                   ) -> dict[str, Any]:
    from segdeploy.video import VideoWriter

    writers: dict[str, Any] = {}
    timing = dict(width=info.width, height=info.height, time_base=info.time_base,
                  rate=info.rate)
    try:
        if mask_video is not None:
            writers["mask"] = VideoWriter(mask_video, kind="mask", **timing)
        if overlay_video is not None:
            writers["overlay"] = VideoWriter(overlay_video, kind="overlay", **timing)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return writers


def _run_video(seg: Any, reader: Any, png_folder: Path | None, writers: dict[str, Any],
               console: Any, infer_workers: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stream the frames; PNGs on worker threads, video frames on one (in order)."""
    import numpy as np

    from segdeploy.imaging import save_mask_png
    from segdeploy.overlays import draw_overlay as blend
    from segdeploy.runtime.stream import WriteBehind

    frames: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    start = time.perf_counter()
    with (frame_progress(console, reader.info.frames) as bar, WriteBehind() as pngs,
          WriteBehind(workers=1) as videos,
          seg.stream(reader, keep_images="overlay" in writers,
                     infer_workers=infer_workers) as stream):
        task = bar.add_task("predict", total=reader.info.frames, fps=0.0)
        for result in stream.results():
            info = result.meta
            if not result.ok:
                errors.append({"index": result.index, "pts": info.pts, "error": result.error})
                console.print(f"[yellow]frame {result.index} (pts {info.pts}) skipped: "
                              f"{result.error}[/yellow]", highlight=False)
                continue
            mask = result.mask
            counts = np.bincount(mask.ravel(), minlength=seg.num_classes)
            frames.append({"index": result.index, "pts": info.pts, "time": info.time,
                           "shares": {c: round(float(n) / mask.size, 6) for c, n in
                                      zip(seg.classes, counts, strict=False)}})
            if png_folder is not None:
                pngs.submit(save_mask_png, str(png_folder / f"frame_{result.index:06d}.png"),
                            mask)
            if "mask" in writers:
                videos.submit(writers["mask"].write, mask.astype(np.uint8), info.pts)
            if "overlay" in writers:
                videos.submit(lambda r=result: writers["overlay"].write(
                    blend(r.image, r.mask), r.meta.pts))
            bar.update(task, advance=1,
                       fps=len(frames) / max(time.perf_counter() - start, 1e-9))
    return frames, errors


def predict_other(engine: str, inputs: tuple[str, ...], output: str, *, source: str | None,
                  ray: str | None, overlay: bool, overlay_to: str | None,
                  json_path: str | None, options: dict[str, Any],
                  made_folder: Callable[[Path, bool], Any]) -> None:
    """`predict --ray`, `predict VIDEO` and `predict --source`: check the arguments, then
    run the model over the video (here) or the images (on Ray)."""
    from rich.console import Console

    console = Console(stderr=True)
    out = Path(output)
    if ray is not None:
        if source is not None or overlay or overlay_to or json_path:
            raise UsageError("--ray segments images into a folder",
                             fix="drop --source / --overlay / --overlay-to / --json")
        from segdeploy.scale import predict_on_ray

        report = predict_on_ray(engine, list(inputs), out,
                                address=None if ray == "local" else ray, options=options,
                                console=console)
        colour = "yellow" if report.failures else "default"
        console.print(f"[{colour}]{report.summary()}[/{colour}]", highlight=False)
        return
    sources = [*inputs, *([source] if source is not None else [])]
    if len(sources) != 1:
        raise UsageError(f"{len(sources)} video sources given", expected="one video or --source",
                         fix="segment each video in its own call")
    if not (sources[0].startswith(("rtsp", "rtmp", "http", "udp", "tcp", "srt", "/dev/"))
            or sources[0].isdigit() or Path(sources[0]).is_file()):
        raise UsageError(f"{sources[0]} does not exist", expected="a video file, a camera "
                         "index or device, or a stream URL")
    from segdeploy.runtime import Segmenter

    options["threads"], workers = stream_threads(engine, options.get("backend"),
                                                 options.get("threads"), True)
    with Segmenter.load(engine, notify=lambda msg: console.print(f"note: {msg}",
                                                              highlight=False),
                        **options) as seg:
        predict_video(seg, sources[0], out, overlay=overlay, overlay_to=overlay_to,
                      json_path=json_path, console=console, made_folder=made_folder,
                      infer_workers=workers)
