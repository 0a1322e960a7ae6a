"""`segdeploy triton MODEL -o REPO`: a Triton model repository serving the artifact."""

from __future__ import annotations

import click

from segdeploy.cli.choices import backend_choice


@click.command("triton")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "repo", required=True, type=click.Path(file_okay=False),
              help="Model repository folder (created if missing; other models are kept).")
@click.option("--name", help="Triton model name (default: the artifact's name).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(min=1),
              help="Largest batch Triton's dynamic batcher forms (images per execution).")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1),
              help="Model instances (per GPU for a plan).")
@click.option("--backend", type=backend_choice(auto=False),
              help="Segmenter backend inside Triton (default: by suffix, .onnx -> "
                   "onnxruntime on CPU, .plan -> tensorrt on GPU).")
@click.option("--threads", default=0, type=click.IntRange(min=0),
              help="CPU threads per instance (0: the backend's default).")
@click.option("--queue-delay-us", default=2000, show_default=True, type=click.IntRange(min=0),
              help="How long the dynamic batcher waits to fill a batch.")
@click.option("--native", is_flag=True,
              help="Also write NAME_native: Triton's own onnxruntime_onnx / tensorrt_plan "
                   "model of the graph (GPU servers; raw tensors in and out).")
@click.option("--tensorrt-accelerator", is_flag=True,
              help="Native ONNX model: run it with ONNX Runtime's TensorRT accelerator.")
@click.option("--fp16", is_flag=True, help="Native ONNX model: the accelerator in FP16.")
@click.option("--force", is_flag=True, help="Replace models of the same name in REPO.")
def command(model: str, repo: str, **options) -> None:
    """Write a Triton model repository that serves MODEL (.onnx, INT8 .onnx or .plan).

    \b
    REPO/NAME/config.pbtxt     Python backend running segdeploy's Segmenter:
    REPO/NAME/1/model.py       uint8 HxWxC images of any size in, HxW masks out
    REPO/NAME/1/MODEL
    REPO/NAME_native/...       with --native

    Clients: Segmenter.load("triton://HOST:8000/NAME") or "grpc://HOST:8001/NAME".
    """
    from segdeploy.serving.triton_repo import RepoOptions, write_repository

    result = write_repository(model, repo, RepoOptions(**options))
    for path in result.models:
        click.echo(f"wrote {path}/ (config.pbtxt, {path.name}/1/)")
    if result.checked:
        click.echo("every config.pbtxt parsed against Triton's schema (model_config_pb2)")
    else:
        click.echo("note: config.pbtxt not checked against Triton's schema: tritonclient is "
                   "not installed (pip install 'segdeploy[serving]')", err=True)
