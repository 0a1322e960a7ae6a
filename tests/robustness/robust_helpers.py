"""Helpers of the robustness suite: tiny artifacts, hostile files, and one CLI runner.

Every case runs the real `segdeploy` entry point (`segdeploy.cli.main.main`) in-process (a
subprocess per case would cost seconds of imports each) and checks the README's promise:
the exit code, exactly one `error:` line saying what / expected / fix, no traceback, no
warning lines, no file left behind and no code from a file run.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="making test artifacts needs torch")
pytest.importorskip("onnx", reason="making test ONNX files needs onnx")

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent / "runtime"), str(HERE.parent / "export")]

from export_test_models import make_checkpoint  # noqa: E402
from tiny_models import TinySegNet, write_onnx  # noqa: E402

MARKER = "segdeploy_pwned_marker"


class Evil:
    """Unpickling this would create the marker file: proof that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@dataclass
class Artifacts:
    root: Path
    ckpt: Path         # tiny U-Net checkpoint (min size 16, 3 channels)
    onnx: Path         # tiny net ONNX with segdeploy metadata (min size 8)
    onnx_static: Path  # same, fixed 2x3x37x41 input
    image: Path        # 40x48 RGB PNG
    marker: Path       # must never exist

    def bad(self, name: str) -> Path:
        return self.root / "bad" / name


def _write_bad_files(folder: Path, art: Artifacts) -> None:
    folder.mkdir()
    good = art.ckpt.read_bytes()
    (folder / "empty.pt").write_bytes(b"")
    (folder / "garbage.pt").write_bytes(os.urandom(300))
    (folder / "truncated.pt").write_bytes(good[: len(good) // 2])
    (folder / "text.pt").write_text("hello\n")
    with open(folder / "evil.pt", "wb") as fh:
        pickle.dump({"format": "segdeploy-checkpoint", "x": Evil(art.marker)}, fh, protocol=2)
    evil_zip = folder / "evil_zip.pt"
    torch.save({"a": torch.zeros(1)}, evil_zip)
    _torch_zip_with_pickle(evil_zip, pickle.dumps(Evil(art.marker), protocol=2))
    torch.save(torch.nn.Conv2d(3, 2, 1).state_dict(), folder / "state_dict.pt")
    torch.jit.script(torch.nn.Conv2d(3, 2, 1)).save(str(folder / "torchscript.pt"))
    torch.save({"format": "segdeploy-checkpoint", "schema_version": 99}, folder / "future.pt")
    torch.save({"format": "segdeploy-checkpoint", "schema_version": 1, "card": [1, 2],
                "state_dict": {}}, folder / "card_list.pt")
    onnx_bytes = art.onnx.read_bytes()
    (folder / "garbage.onnx").write_bytes(os.urandom(500))
    (folder / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "notes.txt").write_text("not a model\n")
    (folder / "notes.plan").write_text("not a plan\n")
    _escape_onnx(art.onnx, folder / "escape.onnx")
    for name, sidecar in {
        "list.plan": "[1, 2, 3]",
        "broken.plan": '{"export": ',
        "typed.plan": json.dumps(_manifest(min_size="16")),
        "nocard.plan": json.dumps({"tensorrt_version": "10.3.0"}),
        "future.plan": json.dumps({**_manifest(), "schema_version": 99}),
    }.items():
        (folder / name).write_bytes(b"\x00\x01fake-plan-bytes")
        (folder / f"{name}.json").write_text(sidecar)
    (folder / "nosidecar.plan").write_bytes(b"\x00\x01fake-plan-bytes")
    (folder / "truncated.png").write_bytes(art.image.read_bytes()[:60])
    (folder / "text.png").write_text("not an image\n")
    (folder / "empty.png").write_bytes(b"")


def _torch_zip_with_pickle(path: Path, payload: bytes) -> None:
    """A torch zip checkpoint whose data.pkl is `payload` (a code-running pickle)."""
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in entries if n.endswith("data.pkl"))
    entries[pkl] = payload
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _escape_onnx(src: Path, dst: Path) -> None:
    import onnx

    model = onnx.load(str(src))
    init = model.graph.initializer[0]
    init.data_location = onnx.TensorProto.EXTERNAL
    init.ClearField("raw_data")
    del init.float_data[:]
    entry = init.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    onnx.save(model, str(dst))


def _manifest(**card_overrides: object) -> dict:
    from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest

    card = ModelCard(arch="tiny", num_classes=3, classes=["a", "b", "c"]).to_dict()
    card.update(card_overrides)
    info = ExportInfo(card=ModelCard(arch="tiny", num_classes=3, classes=["a", "b", "c"]))
    data = PlanManifest(export=info, tensorrt_version="10.3.0", precision="fp16",
                        profiles=[], io=[], onnx_sha256="").to_dict()
    data["export"]["card"] = card
    return data


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in (self.out + self.err).splitlines() if "error:" in ln]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """Run `segdeploy ARGV` in-process; an exception escaping main() fails the test."""
    from segdeploy.cli.main import main

    capsys.readouterr()
    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def assert_one_clear_line(result: CliResult, code: int = 1) -> str:
    """Exit `code`, one `error:` line with what + expected/fix, no traceback or warning."""
    text = result.out + result.err
    assert result.code == code, text
    assert "Traceback" not in text, text
    assert "Warning" not in text, text
    lines = result.error_lines
    assert len(lines) == 1, text
    assert "Expected" in lines[0] or "Fix:" in lines[0], lines[0]
    return lines[0]


def make_artifacts(root: Path) -> Artifacts:
    from PIL import Image

    torch.manual_seed(0)
    onnx_path = write_onnx(root / "tiny.onnx", TinySegNet().eval(), min_size=8)
    static = write_onnx(root / "static.onnx", TinySegNet().eval(), min_size=8, static=True)
    rng = np.random.default_rng(0)
    image = root / "image.png"
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(image)
    ckpt = make_checkpoint(root / "unet.pt", "unet", width=0.125)
    result = Artifacts(root, ckpt, onnx_path, static, image, root / MARKER)
    _write_bad_files(root / "bad", result)
    return result


