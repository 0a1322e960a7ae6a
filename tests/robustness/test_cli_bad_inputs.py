"""Hostile inputs to every command: one clear line, exit 1, nothing written, no code run.

Each case is (id, argv template); `{bad:NAME}` is a file from conftest's bad folder,
`{ckpt}`, `{onnx}`, `{image}` good artifacts, `{out}` a fresh output folder that must stay
empty.
"""

from __future__ import annotations

import re

import pytest
from robust_helpers import Artifacts, assert_one_clear_line, files_under, run_cli

BAD_MODEL_FILES = ["empty.pt", "garbage.pt", "truncated.pt", "text.pt", "evil.pt",
                   "evil_zip.pt", "state_dict.pt", "torchscript.pt", "future.pt",
                   "card_list.pt"]
BAD_ONNX = ["garbage.onnx", "truncated.onnx", "empty.onnx", "escape.onnx"]
BAD_PLANS = ["list.plan", "broken.plan", "typed.plan", "nocard.plan", "future.plan",
             "nosidecar.plan", "notes.plan"]

CASES: list[tuple[str, str]] = [
    # info: every kind of bad artifact
    *[(f"info-{n}", f"info {{bad:{n}}}") for n in BAD_MODEL_FILES + BAD_ONNX + BAD_PLANS],
    ("info-missing", "info {out}/nothing.pt"),
    ("info-suffix", "info {bad:notes.txt}"),
    # eval / bench / verify / export with bad checkpoints
    *[(f"eval-{n}", f"eval {{bad:{n}}} --data brain --limit 1 --no-progress")
      for n in ["evil.pt", "evil_zip.pt", "torchscript.pt", "truncated.pt"]],
    *[(f"bench-c-{n}", f"bench -c {{bad:{n}}} -n 1 --warmup 0 --no-progress")
      for n in ["evil.pt", "torchscript.pt", "garbage.pt"]],
    *[(f"export-{n}", f"export {{bad:{n}}} -o {{out}}/m.onnx --no-progress")
      for n in ["evil.pt", "evil_zip.pt", "garbage.pt", "state_dict.pt", "empty.pt"]],
    ("export-out-is-file", "export {ckpt} -o {image}/m.onnx --no-progress"),
    ("export-out-missing-dir", "export {ckpt} -o {out}/no/such/m.onnx --no-progress"),
    ("export-out-suffix", "export {ckpt} -o {out}/m.txt --no-progress"),
    ("verify-evil", "verify {bad:evil.pt} -e {onnx} --data brain --max-images 1"),
    ("verify-bad-engine", "verify {ckpt} -e {bad:garbage.onnx} --data brain --max-images 1"),
    ("verify-text-engine", "verify {ckpt} -e {bad:notes.txt} --data brain --max-images 1"),
    # train: bad resume files and outputs
    ("train-resume-evil", "train unet --data brain --epochs 1 --resume {bad:evil.pt} "
                          "-o {out}/t.pt --no-progress"),
    ("train-resume-garbage", "train unet --data brain --epochs 1 --resume {bad:garbage.pt} "
                             "-o {out}/t.pt --no-progress"),
    ("train-out-is-file", "train unet --data brain --epochs 1 -o {image}/t.pt --no-progress"),
    ("train-no-data", "train unet --data {out}/nodata --epochs 1 -o {out}/t.pt --no-progress"),
    ("train-unknown-arch", "train nonet --data brain --epochs 1 -o {out}/t.pt --no-progress"),
    ("train-backbone-evil", "train fcn8s --data brain --epochs 1 --backbone-weights "
                            "{bad:evil.pt} -o {out}/t.pt --no-progress"),
    ("train-grey-as-rgb", "train unet --data brain --channels rgb --epochs 1 "
                          "-o {out}/t.pt --no-progress"),
    # build: no TensorRT here, but every check before it must say what is wrong
    *[(f"build-{n}", f"build {{bad:{n}}} -o {{out}}/m.plan") for n in BAD_ONNX],
    ("build-out-is-file", "build {onnx} -o {image}/m.plan"),
    ("build-bad-profile", "build {onnx} -o {out}/m.plan --profile min=1x3x8"),
    # bench: shapes, engines and outputs
    ("bench-shape-channels-onnx", "bench -e {onnx} -s 1x4x32x32 -n 1 --warmup 0"),
    ("bench-shape-channels-ckpt", "bench -c {ckpt} -s 1x1x32x32 -n 1 --warmup 0"),
    ("bench-shape-huge", "bench -e {onnx} -s 1x3x100000x100000 -n 1 --warmup 0"),
    ("bench-shape-below-min", "bench -c {ckpt} -s 1x3x8x8 -n 1 --warmup 0"),
    ("bench-shape-garbage", "bench -e {onnx} -s 1x3xAxB -n 1"),
    ("bench-shape-zero", "bench -e {onnx} -s 0x3x32x32 -n 1"),
    ("bench-engine-text", "bench -e {bad:notes.txt} -n 1"),
    ("bench-engine-textplan", "bench -e {bad:notes.plan} -n 1"),
    ("bench-engine-list-plan", "bench -e {bad:list.plan} -n 1"),
    ("bench-engine-garbage", "bench -e {bad:garbage.onnx} -n 1"),
    ("bench-json-out-is-file", "bench -e {onnx} -n 1 --json {image}/b.json"),
    ("bench-json-missing-dir", "bench -e {onnx} -n 1 --json {out}/no/b.json"),
    ("bench-nothing", "bench -n 1"),
    # predict: bad engines, images and outputs
    *[(f"predict-engine-{n}", f"predict -e {{bad:{n}}} {{image}} -o {{out}}/m.png")
      for n in BAD_ONNX + ["list.plan", "typed.plan", "broken.plan", "nosidecar.plan"]],
    ("predict-onnx-as-plan", "predict --backend tensorrt -e {onnx} {image} -o {out}/m.png"),
    ("predict-text-as-plan", "predict --backend tensorrt -e {bad:notes.txt} {image} "
                             "-o {out}/m.png"),
    ("predict-suffix", "predict -e {bad:notes.txt} {image} -o {out}/m.png"),
    *[(f"predict-image-{n}", f"predict -e {{onnx}} {{bad:{n}}} -o {{out}}/m.png")
      for n in ["truncated.png", "text.png", "empty.png"]],
    ("predict-image-missing", "predict -e {onnx} {out}/none.png -o {out}/m.png"),
    # several images with a bad one: the good masks are written and the bad one listed
    # (exit 1): tests/runtime/test_predict_folders.py
    ("predict-out-is-file", "predict -e {onnx} {image} -o {image}/m.png"),
    ("predict-out-file-folder", "predict -e {onnx} {image} {image} -o {image}/masks"),
    ("predict-out-suffix", "predict -e {onnx} {image} -o {out}/m.jpg"),
    ("predict-overlap-no-tile", "predict -e {onnx} {image} -o {out}/m.png --overlap 4"),
    ("predict-tile-no-centre", "predict -e {onnx} {image} -o {out}/m.png --tile 16 "
                               "--overlap 8"),
    ("predict-budget-garbage", "predict -e {onnx} {image} -o {out}/m.png --memory-budget lots"),
]


def expand(template: str, art: Artifacts, out: str) -> list[str]:
    def sub(match: re.Match[str]) -> str:
        key, _, arg = match.group(1).partition(":")
        if key == "bad":
            return str(art.bad(arg))
        if key == "out":
            return out
        return str(getattr(art, key))
    return re.sub(r"\{([a-z_]+(?::[^}]+)?)\}", sub, template).split()


@pytest.mark.parametrize("template", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_bad_input(template: str, art: Artifacts, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    before_bad = files_under(art.root)
    line = assert_one_clear_line(run_cli(expand(template, art, str(out)), capsys))
    assert not art.marker.exists(), "code from a file ran"
    assert files_under(out) == set(), f"left behind: {files_under(out)}"
    assert files_under(art.root) == before_bad, "a file appeared beside the inputs"
    assert "truncated or corrupt" not in line or "garbage" in template or \
        "truncated" in template or "empty" in template or "text.pt" in template, line


def test_case_count() -> None:
    assert len(CASES) >= 80


def test_item8_wording(art: Artifacts, tmp_path, capsys, monkeypatch) -> None:
    """Item 8: a file used as a folder was said not to exist (fix: mkdir -p a file); a CLI
    fix named the Python argument; Pillow's DecompressionBombWarning leaked raw lines."""
    line = assert_one_clear_line(run_cli(
        ["export", art.ckpt, "-o", f"{art.image}/m.onnx", "--no-progress"], capsys))
    assert "is a file, not a folder" in line and "mkdir" not in line
    line = assert_one_clear_line(run_cli(
        ["train", "unet", "--data", "brain", "--channels", "rgb", "--epochs", "1",
         "-o", tmp_path / "t.pt", "--no-progress"], capsys))
    assert "--channels grey3" in line
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 48 - 1)  # warns, below 2x: decodes
    result = run_cli(["predict", "-e", art.onnx, art.image, "-o", tmp_path / "m.png"], capsys)
    assert result.code == 0 and "Warning" not in result.out + result.err, result.err
    assert (tmp_path / "m.png").exists()
