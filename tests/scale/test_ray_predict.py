"""predict on a local Ray cluster (`make test-scale`, its own venv with ray[data]): 400 real
MRI crops of mixed sizes, one corrupt. Every mask is byte-identical to plain predict's, the
corrupt image is listed (not fatal), a second run skips the 399 done, the CLI does the same,
and no Ray process outlives the run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray runs in `make test-scale` (its own venv)")
MODEL = os.environ.get("SEGDEPLOY_SCALE_MODEL")
pytestmark = [pytest.mark.skipif(not MODEL, reason="SEGDEPLOY_SCALE_MODEL is not set: run "
                                 "`make test-scale`, which makes the model first"),
              pytest.mark.timeout(300)]  # a Ray hang fails the test instead of blocking CI
CORRUPT = "img0137.png"


def ray_pids() -> set[int]:
    """Processes of a Ray cluster (raylet, gcs_server, workers) on this machine."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    marks = ("raylet", "gcs_server", "ray::", "default_worker.py", "dashboard", "monitor.py",
             "log_monitor.py", "runtime_env/agent")
    return {int(line.split(None, 1)[0]) for line in out.splitlines()
            if any(m in line for m in marks) and "pytest" not in line}


def plain_masks(model: Path, images: list[Path], out: Path) -> None:
    from segdeploy.imaging import load_image, save_mask_png
    from segdeploy.runtime import Segmenter

    out.mkdir()
    with Segmenter.load(model) as seg:
        for path in images:
            if path.name != CORRUPT:
                image = load_image(path, channels=seg.channels, intensity=seg.intensity)
                save_mask_png(str(out / f"{path.stem}.png"), seg.predict(image))


def test_ray_masks_equal_plain_predict_resume_and_cleanup(tmp_path):
    from segdeploy.scale import predict_on_ray

    model = Path(MODEL)
    images = sorted((model.parent / "images").glob("*.png"))
    assert len(images) == 400
    before = ray_pids()
    out = tmp_path / "ray"
    first = predict_on_ray(model, [model.parent / "images"], out, actors=2)
    assert first.written == 399 and first.skipped == 0 and first.plan.num_cpus <= 0.5
    assert [Path(p).name for p, _ in first.failures] == [CORRUPT]
    assert (out / "failures.json").is_file() and not (out / "img0137.png").exists()
    plain_masks(model, images, tmp_path / "plain")
    for path in images:
        if path.name != CORRUPT:
            name = f"{path.stem}.png"
            assert (out / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    stamp = (out / "img0000.png").stat().st_mtime_ns
    second = predict_on_ray(model, [model.parent / "images"], out, actors=1)
    assert second.skipped == 399 and second.written == 0 and len(second.failures) == 1
    assert (out / "img0000.png").stat().st_mtime_ns == stamp
    deadline = time.monotonic() + 30
    while ray_pids() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_pids() - before, "Ray processes left behind"
    assert not ray.is_initialized()


def test_cli_ray_resumes_a_list(tmp_path):
    model = Path(MODEL)
    images = sorted((model.parent / "images").glob("*.png"))[:40]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in images) + "\n")
    out = tmp_path / "masks"
    out.mkdir()
    shutil.copy(images[0], out / "img0000.png")  # "already done": must be left alone
    cmd = [sys.executable, "-m", "segdeploy", "predict", "-e", str(model), str(listing),
           "-o", str(out), "--ray"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stderr.split())
    assert "wrote 39 masks" in text and "skipped 1 already done" in text
    assert (out / "img0000.png").read_bytes() == images[0].read_bytes()
    assert len(list(out.glob("*.png"))) == 40


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs `ss` to list listening sockets")
def test_local_cluster_listens_on_loopback_only():
    from segdeploy.scale import ray_cluster

    with ray_cluster(None):
        listing = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = [line.split()[3] for line in listing.splitlines()
            if any(m in line for m in ("raylet", "gcs_server", "ray::"))]
    assert ours, listing
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in ours), ours


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_existing_cluster_by_address(tmp_path):
    """A head started apart (as `ray start --head` on a cluster) is used and left running;
    the test then stops that head by its process group, and nothing of it remains."""
    model = Path(MODEL)
    before = ray_pids()
    port = free_port()
    # this test's "existing cluster": on loopback, without Ray 2.60's default token auth
    # (and without the RAY_* variables the earlier tests' ray.init left in this process)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env = dict(clean, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled")
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        images = sorted((model.parent / "images").glob("*.png"))[:30]
        listing = tmp_path / "list.txt"
        listing.write_text("\n".join(str(p) for p in images) + "\n")
        out = tmp_path / "out"
        run = subprocess.run([sys.executable, "-m", "segdeploy", "predict", "-e", str(model),
                              str(listing), "-o", str(out), "--ray", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=240, env=clean)
        assert run.returncode == 0, run.stderr
        assert "wrote 30 masks" in " ".join(run.stderr.split())
        assert len(list(out.glob("*.png"))) == 30
        assert head.poll() is None  # we disconnected; someone else's cluster keeps running
    finally:
        stop_group(head, port)
    deadline = time.monotonic() + 30  # workers the raylet started go with it
    while ray_pids() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_pids() - before, "Ray processes left behind"


def stop_group(head: subprocess.Popen, port: int) -> None:
    """Stop the head this test started (its process group only), SIGKILL what SIGTERM left
    after 10 s, and remove the cluster file it would leave naming its port."""
    os.killpg(head.pid, signal.SIGTERM)
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        if sig == signal.SIGKILL:
            os.killpg(head.pid, signal.SIGKILL)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            head.poll()
            try:
                os.killpg(head.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            continue
        break
    with pytest.raises(ProcessLookupError):
        os.killpg(head.pid, 0)
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip().endswith(f":{port}"):
        current.unlink()
