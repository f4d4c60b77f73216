"""The ``t2i`` command line: a root Typer app that sub-command groups attach to.

User errors (:class:`T2IError`, and :class:`srcnn.SRError` / :class:`ganbert.GanBertError` from the
libraries) and environment errors (``OSError``: a full disk, a denied permission) end as one
``Error: ...`` line and exit status 1; anything else is a bug and keeps its traceback. The libraries
speak of their own arguments; where an error names one, the line ends with the flag that sets it.
"""

from __future__ import annotations

import logging

import typer
from typer.core import TyperGroup

from ganbert.errors import GanBertError
from srcnn.errors import SRError
from t2i_cli import __version__
from t2i_cli.commands.data import data_app
from t2i_cli.commands.demo import EXAMPLE as DEMO_EXAMPLE
from t2i_cli.commands.demo import demo_cli
from t2i_cli.commands.evaluate import EVALUATE_EXAMPLE, eval_encoder_app, evaluate_cli
from t2i_cli.commands.ganbert import ganbert_app
from t2i_cli.commands.generate import GENERATE_EXAMPLE, INTERPOLATE_EXAMPLE, generate_cli, interpolate_cli
from t2i_cli.commands.train import EXAMPLE as TRAIN_EXAMPLE
from t2i_cli.commands.sr import UPSCALE_EXAMPLE, sr_app, upscale_cli
from t2i_cli.commands.style import RESTYLE_EXAMPLE, restyle_cli, style_app
from t2i_cli.commands.train import export_cli, train_cli
from t2i_cli.errors import T2IError


# A library argument (an error's ``parameter``) -> the flag that sets it in every command that has it.
FLAGS = {
    "num_images": "-n", "seed": "--seed", "upscale": "--upscale", "sr_method": "--sr-method", "steps": "--steps",
    "checkpoint": "--checkpoint", "encoder": "--encoder", "overwrite": "--force", "time_limit": "--time-limit",
    "epochs": "--epochs", "resume": "--resume", "out": "--out", "data": "--data", "gan_type": "--type",
    "conditioning_augmentation": "--ca", "gradient_penalty": "--gp", "preload": "--preload", "workers": "--workers",
    "image_size": "--image-size", "strict": "--strict", "labels": "--labels", "scale": "--scale", "style": "--style", "msg": "--msg",
    "truncation": "--truncation", "metrics": "--metrics", "best": "--best", "eval_every": "--eval-every",
    "eval_metrics": "--eval-metrics", "lr_decay": "--lr-decay", "d_warmup_steps": "--d-warmup-steps",
    "lr": "--lr", "lr_d": "--lr-d", "sheet": "--sheet", "port": "--port",
    "variation_of": "--variation-of", "strength": "--strength", "rerank": "--rerank", "sr_weights": "--sr-weights",
    "noise_from": "--noise-from",
}


def with_flags(message: str, parameter: str | tuple[str, ...] | None, available: set[str] | None = None) -> str:
    """``message`` plus the flags of the arguments it is about: ``... (--time-limit)``; only flags
    in ``available`` (the running command's) when that is known."""
    names = (parameter,) if isinstance(parameter, str) else (parameter or ())
    flags = [FLAGS[name] for name in names if name in FLAGS and (available is None or FLAGS[name] in available)]
    return f"{message} ({' / '.join(flags)})" if flags else message


def _one_line(message: str) -> str:
    """An error raised in a DataLoader worker arrives wrapped with the worker's traceback
    ("Caught T2IError in DataLoader worker process 0. Original Traceback ..."): keep its own line."""
    if "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return message


class _OneLineErrors(TyperGroup):
    """Sub-commands run inside this group's ``invoke``, so catching here covers every command."""

    def invoke(self, ctx):
        arguments = list(ctx.args)  # the sub-command path and its arguments; consumed by the invoke
        try:
            return super().invoke(ctx)
        except (T2IError, SRError, GanBertError) as exc:
            message = with_flags(_one_line(str(exc)), getattr(exc, "parameter", None), self._flags_of_command(ctx, arguments))
        except OSError as exc:
            message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(1)

    def _flags_of_command(self, ctx, arguments: list[str]) -> set[str] | None:
        """The options of the (sub-)command that ran: ``t2i data info`` is the root's "data" group,
        then its "info" command, named by the arguments left after the root's own."""
        command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
        rest = list(arguments)
        while command is not None and hasattr(command, "get_command") and rest:
            command = command.get_command(ctx, rest.pop(0))
        if command is None:
            return None
        return {option for param in command.params for option in getattr(param, "opts", ())}


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="t2i: captions to images with a conditional GAN (GAN-INT-CLS or DF-GAN) and an FSRCNN/SRCNN upscaler.",
    epilog='Example: t2i generate "this flower has pink petals" -n 4 --out pink.png',
)
app.add_typer(data_app, name="data")
app.command("train", epilog=TRAIN_EXAMPLE)(train_cli)
app.command("export", epilog="Example: t2i export runs/flowers weights/flowers-gan")(export_cli)
app.command("generate", epilog=GENERATE_EXAMPLE)(generate_cli)
app.command("interpolate", epilog=INTERPOLATE_EXAMPLE)(interpolate_cli)
app.command("restyle", epilog=RESTYLE_EXAMPLE)(restyle_cli)
app.add_typer(style_app, name="style")
app.command("upscale", epilog=UPSCALE_EXAMPLE)(upscale_cli)
app.add_typer(sr_app, name="sr")
app.command("demo", epilog=DEMO_EXAMPLE)(demo_cli)
app.add_typer(ganbert_app, name="ganbert")
app.command("evaluate", epilog=EVALUATE_EXAMPLE)(evaluate_cli)
app.add_typer(eval_encoder_app, name="eval-encoder")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"t2i {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_time=False, show_path=False)],
        force=True,
    )


def main() -> None:
    app()
