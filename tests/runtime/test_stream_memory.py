"""Memory stays flat on a long stream: the peak RSS after 10,000 frames is within 5% of the
peak after 1,000 (bounded queues; nothing kept per frame). Run in a fresh process so the
peak belongs to the stream alone. A leak of one 60x80 mask per frame would add ~45 MiB
(about a third of the process) by frame 10,000. About 6 s on 2 cores."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from segdeploy.runtime import Segmenter

    def peak_kib():  # VmHWM: ru_maxrss would carry pytest's own peak across exec
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))

    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (60 + i, 80 - i, 3), dtype=np.uint8) for i in range(8)]

    def frames():
        for i in range(10_000):
            yield pool[i % len(pool)]

    peaks = {}
    with Segmenter.load(sys.argv[1], threads=1) as seg:
        for n, mask in enumerate(seg.stream(frames(), prefetch=4, infer_workers=2), 1):
            if n in (1_000, 10_000):
                peaks[n] = peak_kib()
    print(json.dumps(peaks))
""")


def test_peak_rss_is_flat_over_10000_frames(tiny_model):
    path, _ = tiny_model()
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    peaks = {int(k): v for k, v in json.loads(run.stdout).items()}
    assert set(peaks) == {1_000, 10_000}
    assert peaks[10_000] <= peaks[1_000] * 1.05, peaks
