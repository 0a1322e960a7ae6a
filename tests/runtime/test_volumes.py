"""`segdeploy predict scan.nii.gz -o labels.nii.gz`: NIfTI volumes written with nibabel."""

from __future__ import annotations

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

from segdeploy.runtime import Segmenter

nib = pytest.importorskip("nibabel")


def run(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    return code, err + out


def lps_volume(path, shape=(20, 24, 28), dtype=np.int16):
    """A CT-like volume whose voxel axes are not RAS (axis 0 runs S, 1 A, 2 L), 2 x 1 x 1.5
    mm voxels, an offset origin, qform/sform codes and scaling in the header."""
    rng = np.random.default_rng(0)
    data = (rng.normal(40, 10, shape)).astype(dtype)
    data[5:15, 6:18, 8:20] += 300
    affine = np.array([[0, 0, -1.5, 90], [0, 1, 0, -120], [2, 0, 0, -70], [0, 0, 0, 1]],
                      float)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    img.header.set_slope_inter(0.5, -10.0)
    nib.save(img, str(path))
    return path


def test_volume_keeps_affine_and_header_and_slices_the_named_axis(tmp_path, tiny_model, capsys):
    model, _ = tiny_model(in_channels=1)
    src = lps_volume(tmp_path / "scan.nii.gz")
    out = tmp_path / "labels.nii.gz"
    code, text = run(["predict", "-e", str(model), str(src), "-o", str(out), "--threads", "1"],
                     capsys)
    assert code == 0, text
    assert "sliced along voxel axis 0" in text  # axial = the S-I voxel axis of this affine
    scan, labels = nib.load(str(src)), nib.load(str(out))
    assert labels.shape == scan.shape and labels.get_data_dtype() == np.uint8
    np.testing.assert_allclose(labels.affine, scan.affine)
    assert int(labels.header["qform_code"]) == 1 and int(labels.header["sform_code"]) == 2
    np.testing.assert_allclose(labels.header.get_zooms(), scan.header.get_zooms())
    assert labels.header.get_xyzt_units() == ("mm", "sec")
    assert labels.header.get_slope_inter() in ((1.0, 0.0), (None, None))  # ids, not scaled
    got = np.asarray(labels.dataobj)
    assert got.max() < 3
    # slice 7 along axis 0 is what Segmenter.predict gives for that slice, mapped by one
    # window for the whole volume
    with Segmenter.load(model) as seg:
        data = np.asarray(scan.dataobj)
        window = seg.intensity.for_volume(data)
        expected = seg.predict(window.apply(data[7], raw=True))
    np.testing.assert_array_equal(got[7], expected)
    code, text = run(["predict", "-e", str(model), str(src), "-o", str(tmp_path / "c.nii"),
                      "--axis", "coronal"], capsys)
    assert code == 0 and "sliced along voxel axis 1" in text


def test_volume_errors_are_one_line(tmp_path, tiny_model, capsys):
    model, _ = tiny_model(in_channels=1)
    series = nib.Nifti1Image(np.zeros((16, 16, 16, 2), np.float32), np.eye(4))
    nib.save(series, str(tmp_path / "series.nii.gz"))
    code, err = run(["predict", "-e", str(model), str(tmp_path / "series.nii.gz"), "-o",
                     str(tmp_path / "o.nii.gz")], capsys)
    assert code == 1 and "one 3-D volume" in err
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 30), np.float32), np.eye(4)),
             str(tmp_path / "thin.nii.gz"))
    code, err = run(["predict", "-e", str(model), str(tmp_path / "thin.nii.gz"), "-o",
                     str(tmp_path / "o.nii.gz")], capsys)
    assert code == 1 and "4x5 slices, too small for the model" in err
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "a.png")
    code, err = run(["predict", "-e", str(model), str(tmp_path / "thin.nii.gz"),
                     str(tmp_path / "a.png"), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "separate calls" in err
    (tmp_path / "broken.nii.gz").write_bytes(b"not a volume")
    code, err = run(["predict", "-e", str(model), str(tmp_path / "broken.nii.gz"), "-o",
                     str(tmp_path / "o.nii.gz")], capsys)
    assert code == 1 and "cannot read NIfTI volume" in err


def test_2d_slices_stack_into_one_volume_and_mixed_sizes_are_refused(tmp_path, tiny_model,
                                                                     capsys):
    model, _ = tiny_model(in_channels=1)
    folder = tmp_path / "slices"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(
            folder / f"s{i}.png")
    code, err = run(["predict", "-e", str(model), str(folder), "-o",
                     str(tmp_path / "stack.nii.gz")], capsys)
    assert code == 0, err
    assert nib.load(str(tmp_path / "stack.nii.gz")).shape == (20, 30, 3)
    Image.fromarray(np.zeros((21, 30), np.uint8)).save(folder / "s3.png")
    code, err = run(["predict", "-e", str(model), str(folder), "-o",
                     str(tmp_path / "stack2.nii.gz")], capsys)
    assert code == 1 and "s0.png is 20x30 but s3.png is 21x30" in err
    assert not (tmp_path / "stack2.nii.gz").exists()


@pytest.mark.slow
def test_mni152_volume_dice_against_the_tissue_labels(brain_onnx, tmp_path, capsys):
    """The whole MNI152 T1 (the volume `brain` comes from) through `segdeploy predict`:
    the card's T1 window reproduces the training slices exactly, and the label volume
    matches the grey / white matter labels (BENCHMARKS.md publishes the 15-epoch model's)."""
    from segdeploy.data import brain, get_dataset
    from segdeploy.volumes import volume_dice

    files = brain.template_files()
    out = tmp_path / "labels.nii.gz"
    code, err = run(["predict", "-e", str(brain_onnx[0]), str(files["t1"]), "-o", str(out)],
                    capsys)
    assert code == 0, err
    labels = np.asarray(nib.load(str(out)).dataobj)
    truth = brain.tissue_labels()
    assert labels.shape == truth.shape == (197, 233, 189)
    dice = volume_dice(labels, truth, 3)
    assert dice[1] > 0.7 and dice[2] > 0.7, dice  # grey, white matter (0.88, 0.79 here)
    val = get_dataset("brain", "val")
    with Segmenter.load(brain_onnx[0]) as seg:
        z = val.slice_indices[5]
        np.testing.assert_array_equal(labels[:, :, z], seg.predict(val[5][0]))
