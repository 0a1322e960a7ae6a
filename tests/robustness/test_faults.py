"""Faults: a full disk (a real small tmpfs), SIGTERM / SIGINT mid-export, a second writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_helpers import Artifacts, assert_one_clear_line, files_under, run_cli


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs filled to the last byte (skipped where mounting is not allowed)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        fd = os.open(mount / ".filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        # lazy: a child process that still holds a file there must not keep the mount alive
        subprocess.run(["umount", "-l", str(mount)], check=False)


FULL_DISK_CASES = {
    "export": "export {ckpt} -o {out}/m.onnx --no-progress --no-fp16 --no-trt-check",
    "train": "train unet --data brain --epochs 1 --limit-train 2 --limit-val 1 --width 0.125 "
             "--image-size 32 --batch-size 2 --device cpu -o {out}/t.pt --no-progress",
    "predict": "predict -e {onnx} {image} -o {out}/m.png",
    "predict-folder": "predict -e {onnx} {image} {image2} -o {out}/masks",
    "bench-json": "bench -e {onnx} -n 2 --warmup 0 --no-progress --json {out}/b.json",
    "eval-json": "eval {ckpt} --data brain --limit 1 --device cpu --no-progress "
                 "--json {out}/e.json",
}


@pytest.mark.parametrize("name", sorted(FULL_DISK_CASES))
def test_full_disk(name: str, art: Artifacts, full_disk: Path, capsys) -> None:
    """Item 1: ENOSPC was a traceback; bench and eval now refuse before measuring."""
    image2 = art.root / "image2.png"
    image2.write_bytes(art.image.read_bytes())
    argv = FULL_DISK_CASES[name].format(ckpt=art.ckpt, onnx=art.onnx, image=art.image,
                                        image2=image2, out=full_disk).split()
    result = run_cli(argv, capsys)
    line = assert_one_clear_line(result)
    assert "no space left" in line and str(full_disk) in line and "needed" in line, line
    assert files_under(full_disk) == {".filler"}
    if name in ("bench-json", "eval-json"):
        assert "latency" not in result.out and "mIoU" not in result.out  # nothing measured


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "segdeploy.cli.main", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_tmp(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.endswith(".tmp") for p in folder.iterdir()):
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no temporary file appeared in {folder}: {proc.communicate()}")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_export_cleans_up(sig: int, code: int, art: Artifacts, tmp_path) -> None:
    """Item 7: SIGTERM left hidden .tmp files; now it is handled like SIGINT."""
    out = tmp_path / "out"
    out.mkdir()
    proc = _spawn(["export", str(art.ckpt), "-o", str(out / "m.onnx"), "--no-progress"])
    _wait_for_tmp(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    if sig == signal.SIGTERM:
        assert "SIGTERM" in lines[0] and "removed" in lines[0]
    assert files_under(out) == set()


def test_second_writer_is_refused(art: Artifacts, tmp_path, capsys) -> None:
    """Item 9: two exports to one -o both 'succeeded', the second replacing the first."""
    out = tmp_path / "m.onnx"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom segdeploy.locking import output_lock\n"
         f"with output_lock({str(out)!r}):\n    print('locked', flush=True)\n"
         "    time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_cli(["export", str(art.ckpt), "-o", str(out), "--no-progress"], capsys)
        line = assert_one_clear_line(result)
        assert "another process is writing" in line and f"pid {holder.pid}" in line
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGINT)  # KeyboardInterrupt: the lock is released
        holder.wait(timeout=30)
    assert not any(p.name.endswith(".lock") for p in tmp_path.iterdir())


def test_lock_released_and_reentrant(tmp_path) -> None:
    from segdeploy.atomic import write_bytes_atomic
    from segdeploy.locking import lock_path, output_lock

    target = tmp_path / "x.bin"
    with output_lock(target):
        write_bytes_atomic(target, b"1")  # the same process may write what it locked
        assert lock_path(target).exists()
    assert not lock_path(target).exists() and target.read_bytes() == b"1"
    assert os.listdir(tmp_path) == ["x.bin"]
