"""Images/s of Segmenter.stream (the pipelined `predict`) against the plain one-at-a-time loop.

    flock /tmp/segdeploy-bench.lock .venv/bin/python benchmarks/streams.py --json out.json

Models (random weights: speed only, exported as benchmarks/runtime_overhead.py does): a fast
one, fcn_resnet18 with pre-processing and argmax in the graph (`export --with-preprocess
--with-argmax`), and a slow one, U-Net. Inputs: the real brain MRI slices (`brain`, val and
train) as a folder of JPEGs, and the same slices as an H.264 .mp4. Each run segments every
input and writes one palette PNG per mask, as `segdeploy predict` does:

- plain: decode, predict, write, one after the other (the loop predict had before);
- pipelined: `Segmenter.stream` (decode and pre-process ahead in worker threads, inference
  back to back, argmax and crop behind) with the PNGs written behind (WriteBehind).

The two run interleaved (alternating order each round) so load on the shared machine hits
both alike; images/s is frames / the median wall time. Memory: peak RSS after 1,000 and
after 10,000 frames of a synthetic stream through the fast model.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runtime_overhead import export_reference, interleaved  # noqa: E402


def make_inputs(folder: Path, count: int) -> tuple[Path, Path]:
    """A folder of JPEGs and an .mp4 of `count` real MRI slices (RGB, 197x233 / 196x232)."""
    import av
    from PIL import Image

    from segdeploy.data import get_dataset

    slices = []
    for split in ("val", "train"):
        ds = get_dataset("brain", split=split)
        slices += [np.repeat(ds[i][0][..., :1], 3, axis=2) for i in range(len(ds))]
    slices = [slices[i % len(slices)] for i in range(count)]
    jpegs = folder / "jpegs"
    jpegs.mkdir()
    for i, image in enumerate(slices):
        Image.fromarray(image).save(jpegs / f"slice{i:04d}.jpg", quality=95)
    video = folder / "slices.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = 196, 232  # yuv420p: even sizes
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for i, image in enumerate(slices):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:196, :232]),
                                               format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return jpegs, video


def runs(seg: Any, piped: Any, workers: int, jpegs: Path, video: Path, out: Path
         ) -> dict[str, Callable[[], int]]:
    """The four runs (plain / pipelined x folder / video); each returns its frame count.
    `seg` has the default session, `piped` the one `segdeploy predict` loads for a stream
    (runtime.stream.cpu_split: `workers` runs in flight, the cores split between them)."""
    from segdeploy.imaging import load_image, save_mask_png
    from segdeploy.runtime.stream import Frame, WriteBehind
    from segdeploy.video import VideoReader

    paths = sorted(jpegs.glob("*.jpg"))

    def load(p: Path) -> np.ndarray:
        return load_image(p, channels=seg.channels, intensity=seg.intensity)

    def plain_folder() -> int:
        for p in paths:
            save_mask_png(str(out / f"{p.stem}.png"), seg.predict(load(p)))
        return len(paths)

    def stream_folder() -> int:
        frames = (Frame(lambda p=p: load(p), meta=p) for p in paths)
        with WriteBehind() as writer:
            for r in piped.stream(frames, infer_workers=workers).results():
                writer.submit(save_mask_png, str(out / f"{r.meta.stem}.png"), r.mask)
        return len(paths)

    def plain_video() -> int:
        with VideoReader(video) as reader:
            n = 0
            for frame in reader:
                save_mask_png(str(out / f"f{n:05d}.png"), seg.predict(frame.image))
                n += 1
        return n

    def stream_video() -> int:
        with VideoReader(video) as reader, WriteBehind() as writer:
            n = 0
            for r in piped.stream(reader, infer_workers=workers).results():
                writer.submit(save_mask_png, str(out / f"f{r.index:05d}.png"), r.mask)
                n += 1
        return n

    return {"folder plain": plain_folder, "folder pipelined": stream_folder,
            "video plain": plain_video, "video pipelined": stream_video}


def throughput(model: Path, jpegs: Path, video: Path, out: Path, repeats: int,
               frames: int, inputs: list[str]) -> dict[str, float]:
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.stream import cpu_split

    threads, workers = cpu_split()
    with Segmenter.load(model) as seg, Segmenter.load(model, threads=threads) as piped:
        fns = {k: fn for k, fn in runs(seg, piped, workers, jpegs, video, out).items()
               if k.split()[0] in inputs}
        return _timed(fns, repeats, frames)


def _timed(fns: dict[str, Callable[[], int]], repeats: int, frames: int) -> dict[str, float]:
    for fn in fns.values():  # warm up: sessions, thread pools, page cache
        fn()
    times = interleaved(fns, repeats)
    return {name: frames / statistics.median(t) for name, t in times.items()}


def peak_rss_mib() -> float:
    """VmHWM (reset by memory_flat before its stream): ru_maxrss keeps the peak of the
    throughput runs before it, and of the parent across exec, and would read flat."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_flat(seg: Any, total: int = 10_000, first: int = 1_000) -> dict[str, float]:
    """Peak RSS after `first` and after `total` frames of an endless-style stream."""
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (197 + i, 233 - i, 3), dtype=np.uint8) for i in range(8)]

    def frames() -> Any:
        for i in range(total):
            yield pool[i % len(pool)]

    marks: dict[str, float] = {}
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak from here on is the stream's
    except OSError:
        pass
    for n, _ in enumerate(seg.stream(frames(), prefetch=4), 1):
        if n in (first, total):
            marks[f"peak_rss_mib_after_{n}"] = round(peak_rss_mib(), 1)
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-frames", type=int, default=10_000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--models", default="fast,slow", help="fast, slow or both")
    parser.add_argument("--inputs", default="folder,video", help="folder, video or both")
    parser.add_argument("--export-only", default=None, metavar="ONNX",
                        help="only export the fast model to ONNX (for benchmarks/ray_scale.py)")
    args = parser.parse_args()
    from segdeploy.bench.environment import cpu_model
    from segdeploy.runtime import Segmenter

    if args.export_only:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_reference("fcn_resnet18", 1.0, 3, Path(tmp), in_graph=True)
            Path(args.export_only).write_bytes(path.read_bytes())
        return

    results: dict[str, Any] = {"cpu": cpu_model(), "frames": args.frames,
                               "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        jpegs, video = make_inputs(folder, args.frames)
        out = folder / "masks"
        out.mkdir()
        wanted = args.models.split(",")
        models = {}
        if "fast" in wanted:
            models["fcn_resnet18 (in-graph pre-processing + argmax)"] = export_reference(
                "fcn_resnet18", 1.0, 3, folder, in_graph=True)
        if "slow" in wanted:
            models["unet (width 0.5)"] = export_reference("unet", 0.5, 3, folder)
        for name, path in models.items():
            t0 = time.perf_counter()
            results[name] = throughput(path, jpegs, video, out, args.repeats, args.frames,
                                       args.inputs.split(","))
            results[name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(name, json.dumps(results[name]), flush=True)
        if args.memory_frames:
            with Segmenter.load(export_reference("fcn_resnet18", 1.0, 3, folder,
                                                 in_graph=True)) as seg:
                results["memory"] = memory_flat(seg, args.memory_frames)
            print("memory", json.dumps(results["memory"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
