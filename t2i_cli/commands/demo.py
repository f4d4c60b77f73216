"""``t2i demo``: serve the browser page (loopback only unless --share or --host says otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from t2i_cli.commands.generate import CheckpointOption, EncoderOverride
from t2i_cli.commands.options import DeviceOption

EXAMPLE = "Example: t2i demo --port 7860   (then open http://127.0.0.1:7860)"


def demo_cli(
    checkpoint: CheckpointOption = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the page to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    share: Annotated[bool, typer.Option("--share", help="Also open a public gradio.live link.")] = False,
    encoder: EncoderOverride = None,
    sr_weights: Annotated[Optional[list[Path]], typer.Option("--sr-weights", help="SR weights to upscale with instead of the shipped ones (repeat: one file per scale).")] = None,
    device: DeviceOption = "auto",
) -> None:
    """Serve the Gradio page: captions in, 64 px images and their upscaled versions out."""
    from t2i_cli.errors import T2IError

    try:
        import gradio  # noqa: F401
    except ImportError:
        raise T2IError("the demo needs Gradio: pip install -e '.[web]'") from None
    if not 1 <= port <= 65535:
        raise T2IError(f"--port must lie in 1..65535, got {port}")
    from t2i_cli.pipeline import T2IPipeline
    from t2i_cli.web import build_demo

    check_port_free(host, port)  # before the models load, and before saying it serves
    pipeline = T2IPipeline.from_pretrained(checkpoint, device=device, encoder=encoder, sr_weights=sr_weights or [])
    demo = build_demo(pipeline, checkpoint=str(checkpoint) if checkpoint is not None else None, encoder=encoder)
    try:
        demo.launch(server_name=host, server_port=port, share=share, show_error=True, prevent_thread_lock=True)
    except OSError as exc:  # taken in the seconds the models loaded
        raise T2IError(f"cannot serve on {host}:{port}: {exc.strerror or exc}", parameter="port") from None
    typer.echo(f"serving on http://{host}:{port} ({pipeline.describe()})")
    demo.block_thread()


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, in one line."""
    import socket

    from t2i_cli.errors import T2IError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as exc:
        raise T2IError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (is another demo running? choose --port)",
                       parameter="port") from None
