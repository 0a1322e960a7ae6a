"""The `segdeploy` command: a click group whose subcommands live in one module each."""

from __future__ import annotations

import importlib
import sys

import click

from segdeploy import __version__
from segdeploy.errors import MissingDependencyError, SegdeployError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="segdeploy")
def cli() -> None:
    """Semantic segmentation from PyTorch to verified, fast ONNX Runtime / TensorRT deployments.

    \b
    segdeploy train fcn8s --data brain            -> fcn8s.pt
    segdeploy export fcn8s.pt                     -> fcn8s.onnx, fcn8s.fp16.onnx
    segdeploy build fcn8s.fp16.onnx               -> fcn8s.plan (+ fcn8s.plan.json)
    segdeploy verify fcn8s.pt --engine fcn8s.plan
    segdeploy bench --engine fcn8s.plan
    segdeploy predict --engine fcn8s.plan image.png -o mask.png
    """


#: One module per subcommand, each exposing `command`; they import only click and light
#: segdeploy modules at top level. Add a line here to register a new command.
COMMAND_MODULES = (
    "info",
    "train",
    "eval",
    "export",
    "quantize",
    "build",
    "predict",
    "bench",
    "benchmark",
    "verify",
    "card",
    "triton",
    "crf_tune",
)


def _register() -> None:
    for name in COMMAND_MODULES:
        cli.add_command(importlib.import_module(f"segdeploy.cli.{name}").command)


_register()


#: Optional top-level modules -> the extra that installs them. The base install is the
#: runtime only, so e.g. `segdeploy export` there must name `segdeploy[torch]`, not crash.
OPTIONAL_MODULES = {
    "torch": "torch", "onnx": "torch", "onnxscript": "torch", "onnxconverter_common": "torch",
    "nibabel": "torch", "tifffile": "torch", "sympy": "torch",
    "tensorrt": "tensorrt", "cuda": "tensorrt", "matplotlib": "plot",
    "pydensecrf": "crf",
}


def missing_dependency(exc: ModuleNotFoundError) -> MissingDependencyError | None:
    """A MissingDependencyError naming the extra, for an optional module; None otherwise."""
    top = (exc.name or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    fix = ("pip install torch==2.13.0 && pip install 'segdeploy[torch]' (torch first, pinned: "
           "an unpinned torch pulls several GB of CUDA packages)" if extra == "torch" else None)
    return MissingDependencyError(top, extra=extra, purpose="by this command", fix=fix)


def _print_error(exc: SegdeployError) -> None:
    from rich.console import Console
    from rich.markup import escape  # "segdeploy[tensorrt]" is not a style tag

    Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                               soft_wrap=True)


class Terminated(BaseException):
    """SIGTERM (kill, a CI or systemd timeout), raised in the main thread like
    KeyboardInterrupt, so every atomic writer's cleanup runs before exit 143."""


_SIGNALS_SEEN: list[int] = []


def _on_sigterm(signum: int, frame: object) -> None:
    _SIGNALS_SEEN.append(signum)  # survives a library that wraps the exception (an import)
    raise Terminated()


def _on_sigint(signum: int, frame: object) -> None:
    _SIGNALS_SEEN.append(signum)
    raise KeyboardInterrupt


def _handle_signals() -> dict[int, object]:
    """Install our SIGTERM and SIGINT handlers; returns the previous ones (none off the
    main thread, and SIGINT only where Python's own handler was in place)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, object] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_sigint)
    return previous


def main(argv: list[str] | None = None) -> None:
    """Entry point: SegdeployError becomes one red line and exit code 1; SIGINT exits 130,
    SIGTERM 143 (128 + the signal number), both after removing partial files."""
    previous = _handle_signals()
    try:
        _run(argv)
    finally:
        import signal

        for signum, handler in previous.items():  # in-process callers get theirs back
            signal.signal(signum, handler)  # type: ignore[arg-type]


def _run(argv: list[str] | None) -> None:
    import signal

    try:
        cli.main(args=argv, standalone_mode=False)
    except BaseException as exc:  # noqa: B036 - every exit path is mapped below
        seen = set(_SIGNALS_SEEN)
        _SIGNALS_SEEN.clear()
        if seen and not isinstance(exc, SystemExit):
            # the signal's own exception, or what a library made of it: a C extension
            # importing while it arrived turns it into "ImportError: initialization failed"
            if signal.SIGTERM in seen:
                _print_error(SegdeployError("terminated by SIGTERM; partial output files "
                                            "were removed",
                                            fix="run the command again to completion"))
                sys.exit(143)
            click.echo("Aborted.", err=True)
            sys.exit(130)
        _exit_for(exc)


def _exit_for(exc: BaseException) -> None:
    """One red line and exit 1 for our errors; click's own exits as click means them."""
    if isinstance(exc, SegdeployError):
        _print_error(exc)
        sys.exit(1)
    if isinstance(exc, ModuleNotFoundError):
        error = missing_dependency(exc)
        if error is None:
            raise exc
        _print_error(error)
        sys.exit(1)
    if isinstance(exc, click.exceptions.Abort):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    if isinstance(exc, click.ClickException):
        exc.show()
        sys.exit(exc.exit_code)
    if isinstance(exc, click.exceptions.Exit):
        sys.exit(exc.exit_code)
    raise exc


if __name__ == "__main__":
    main()
