"""`segdeploy predict` on folders (pipelined) and videos, with the brain U-Net on real MRI
slices: the masks equal one-at-a-time predict, a video keeps its frame count, order and
timing, a corrupt frame in the middle is reported by index and the rest are written."""

from __future__ import annotations

import json
import sys
from fractions import Fraction

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

from segdeploy.runtime import Segmenter

av = pytest.importorskip("av", reason="video tests need PyAV (pip install 'segdeploy[video]')")

pytestmark = pytest.mark.slow  # trains the shared brain U-Net once per session
N_FRAMES, CORRUPT = 12, 5
#: irregular timing on purpose (ms): a writer that renumbers frames would lose it
PTS = [i * 40 + (7 if i == 3 else 0) + (100 if i >= 8 else 0) for i in range(N_FRAMES)]


@pytest.fixture(scope="module")
def slices():
    from segdeploy.data import get_dataset

    ds = get_dataset("brain", split="val")
    step = max(len(ds) // N_FRAMES, 1)
    return [np.repeat(ds[i * step][0][..., :1], 3, axis=2) for i in range(N_FRAMES)]


def write_clip(path, frames, pts=PTS):
    """A lossless FFV1 .mkv (odd 197x233 frames, 1 ms time base, every frame a keyframe)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = 1
        for image, t in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corrupt_copy(src, dst, index):
    """Remux `src` with packet `index` replaced by random bytes of the same size."""
    rng = np.random.default_rng(0)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for k, packet in enumerate(inp.demux(s_in)):
            if packet.size == 0:
                continue
            if k == index:
                bad = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                bad.pts, bad.dts, bad.time_base = packet.pts, packet.dts, packet.time_base
                packet = bad
            packet.stream = s_out
            out.mux(packet)
    return dst


def decoded(path, fmt="rgb24"):
    with av.open(str(path)) as container:
        return [(f.pts, f.time, f.to_ndarray(format=fmt)) for f in container.decode(video=0)]


def test_video_pngs_json_and_overlay_keep_order_and_timing(brain_onnx, slices, tmp_path,
                                                           capsys):
    clip = write_clip(tmp_path / "clip.mkv", slices)
    out, report = tmp_path / "masks", tmp_path / "frames.json"
    code, _, err = run_cli(["predict", "-e", str(brain_onnx[0]), str(clip), "-o", str(out),
                            "--overlay", "--json", str(report)], capsys)
    assert code == 0, err
    frames = decoded(clip, fmt="gray")  # the brain U-Net takes grey images
    assert [p for p, _, _ in frames] == PTS
    with Segmenter.load(brain_onnx[0]) as seg:
        expected = [seg.predict(image) for _, _, image in frames]
    pngs = sorted(out.glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:06d}.png" for i in range(N_FRAMES)]
    for png, want in zip(pngs, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(png)), want)
    assert len({m.tobytes() for m in expected}) > 1  # the slices differ: order is checked
    data = json.loads(report.read_text())
    assert [f["index"] for f in data["frames"]] == list(range(N_FRAMES))
    assert [f["pts"] for f in data["frames"]] == PTS and data["errors"] == []
    shares = data["frames"][0]["shares"]
    assert set(shares) == set(data["classes"]) and abs(sum(shares.values()) - 1) < 1e-4
    overlay = decoded(out / "overlay.mp4")
    assert len(overlay) == N_FRAMES
    assert [round(t, 3) for _, t, _ in overlay] == [t / 1000 for t in PTS]
    assert overlay[0][2].shape[:2] == (198, 234)  # H.264 yuv420p: padded to even sizes


def test_mask_video_is_lossless_and_corrupt_frame_is_reported(brain_onnx, slices, tmp_path,
                                                              capsys):
    clip = corrupt_copy(write_clip(tmp_path / "clip.mkv", slices), tmp_path / "bad.mkv",
                        CORRUPT)
    out, report = tmp_path / "masks.mkv", tmp_path / "frames.json"
    # --source: the path cameras and streams take (0, /dev/video0, rtsp://), here a file
    code, _, err = run_cli(["predict", "-e", str(brain_onnx[0]), "--source", str(clip), "-o",
                            str(out), "--json", str(report)], capsys)
    assert code == 0, err
    err = " ".join(err.split())  # rich wraps lines
    assert f"frame {CORRUPT} (pts {PTS[CORRUPT]}) skipped" in err
    assert "1 frame(s) failed: 5" in err
    frames = decoded(tmp_path / "clip.mkv", fmt="gray")
    with Segmenter.load(brain_onnx[0]) as seg:
        expected = [seg.predict(image) for _, _, image in frames]
    masks = decoded(out, fmt="gray")
    kept = [i for i in range(N_FRAMES) if i != CORRUPT]
    assert [p for p, _, _ in masks] == [PTS[i] for i in kept]
    for (_, _, mask), i in zip(masks, kept, strict=True):
        np.testing.assert_array_equal(mask, expected[i])
    data = json.loads(report.read_text())
    assert [e["index"] for e in data["errors"]] == [CORRUPT]
    assert data["errors"][0]["pts"] == PTS[CORRUPT]
    assert [f["index"] for f in data["frames"]] == kept


def test_pipelined_folder_predict_equals_one_at_a_time(brain_onnx, slices, tmp_path, capsys):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, image in enumerate(slices):
        Image.fromarray(image[..., 0]).save(folder / f"s{i:02d}.png")
    out = tmp_path / "out"
    code, _, err = run_cli(["predict", "-e", str(brain_onnx[0]), str(folder), "-o", str(out),
                            "--overlay"], capsys)
    assert code == 0, err
    from segdeploy.imaging import load_image

    with Segmenter.load(brain_onnx[0]) as seg:
        for src in sorted(folder.iterdir()):
            want = seg.predict(load_image(src, channels=seg.channels, intensity=seg.intensity))
            np.testing.assert_array_equal(np.asarray(Image.open(out / src.name)), want)
            assert (out / f"{src.stem}.overlay.png").is_file()


def test_missing_pyav_names_the_extra(brain_onnx, tmp_path, monkeypatch, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read: PyAV is missing")
    monkeypatch.setitem(sys.modules, "av", None)
    code, _, err = run_cli(["predict", "-e", str(brain_onnx[0]), str(clip), "-o",
                            str(tmp_path / "m")], capsys)
    assert code == 1 and "segdeploy[video]" in err


def test_folder_image_that_fails_mid_run_is_named(brain_onnx, slices, tmp_path, capsys):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, image in enumerate(slices[:4]):
        Image.fromarray(image[..., 0]).save(folder / f"s{i}.png")
    good = (folder / "s2.png").read_bytes()
    (folder / "s2.png").write_bytes(good[:len(good) // 2])  # header intact, data cut
    code, _, err = run_cli(["predict", "-e", str(brain_onnx[0]), str(folder), "-o",
                            str(tmp_path / "out")], capsys)
    said = " ".join(err.split())
    assert code == 1 and "failed" in said and "s2.png" in said and "1 of 4 images" in said
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0.png", "s1.png",
                                                                   "s3.png"]
