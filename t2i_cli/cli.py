"""The ``t2i`` command line: a root Typer app that sub-command groups attach to.

User errors (:class:`T2IError`, and :class:`srcnn.SRError` / :class:`ganbert.GanBertError` from the
libraries) and environment errors (``OSError``: a full disk, a denied permission) end as one
``Error: ...`` line and exit status 1; anything else is a bug and keeps its traceback. The libraries
speak of their own arguments; where an error names one, the line ends with the flag that sets it.
"""

from __future__ import annotations

import importlib
import logging

import typer
from typer.core import TyperGroup

from ganbert.errors import GanBertError
from srcnn.errors import SRError
from t2i_cli import __version__
from t2i_cli.errors import T2IError

# Each command (or group) of the root: the module it lives in, its Typer function or app, and its
# example (an attribute of the module) for the help's epilog. Only the command that runs is
# imported and built: building all of them took ~0.15 s of every cold start.
COMMANDS = {
    "data": ("t2i_cli.commands.data", "data_app", None),
    "train": ("t2i_cli.commands.train", "train_cli", "EXAMPLE"),
    "export": ("t2i_cli.commands.train", "export_cli", "EXPORT_EXAMPLE"),
    "generate": ("t2i_cli.commands.generate", "generate_cli", "GENERATE_EXAMPLE"),
    "interpolate": ("t2i_cli.commands.generate", "interpolate_cli", "INTERPOLATE_EXAMPLE"),
    "restyle": ("t2i_cli.commands.style", "restyle_cli", "RESTYLE_EXAMPLE"),
    "style": ("t2i_cli.commands.style", "style_app", None),
    "upscale": ("t2i_cli.commands.sr", "upscale_cli", "UPSCALE_EXAMPLE"),
    "sr": ("t2i_cli.commands.sr", "sr_app", None),
    "demo": ("t2i_cli.commands.demo", "demo_cli", "EXAMPLE"),
    "ganbert": ("t2i_cli.commands.ganbert", "ganbert_app", None),
    "evaluate": ("t2i_cli.commands.evaluate", "evaluate_cli", "EVALUATE_EXAMPLE"),
    "eval-encoder": ("t2i_cli.commands.evaluate", "eval_encoder_app", None),
}


# A library argument (an error's ``parameter``) -> the flag that sets it in every command that has it.
FLAGS = {
    "num_images": "-n", "seed": "--seed", "upscale": "--upscale", "sr_method": "--sr-method", "steps": "--steps",
    "checkpoint": "--checkpoint", "encoder": "--encoder", "overwrite": "--force", "time_limit": "--time-limit",
    "epochs": "--epochs", "resume": "--resume", "out": "--out", "data": "--data", "gan_type": "--type", "conditional": "--unconditional",
    "conditioning_augmentation": "--ca", "minibatch_discrimination": "--mbd", "gradient_penalty": "--gp", "preload": "--preload", "workers": "--workers",
    "image_size": "--image-size", "strict": "--strict", "labels": "--labels", "scale": ("--upscale", "--scale"), "style": "--style", "msg": "--msg",
    "truncation": "--truncation", "metrics": "--metrics", "best": "--best", "eval_every": "--eval-every",
    "eval_metrics": "--eval-metrics", "lr_decay": "--lr-decay", "d_warmup_steps": "--d-warmup-steps",
    "lr": "--lr", "lr_d": "--lr-d", "sheet": "--sheet", "port": "--port",
    "variation_of": "--variation-of", "strength": "--strength", "rerank": "--rerank", "sr_weights": "--sr-weights",
    "noise_from": "--noise-from", "feature_matching_coef": "--feature-matching", "arch": "--arch",
    "fractions": "--fractions", "holdout": "--holdout", "seeds": "--seeds", "eval_tsv": "--eval-tsv",
    "kernels": "--kernels", "widths": "--widths", "size": "--fsrcnn-size", "output": "--output",
}


def with_flags(message: str, parameter: str | tuple[str, ...] | None, available: set[str] | None = None) -> str:
    """``message`` plus the flags of the arguments it is about: ``... (--time-limit)``; only flags
    in ``available`` (the running command's) when that is known."""
    names = (parameter,) if isinstance(parameter, str) else (parameter or ())
    flags = []
    for name in names:  # a name's flags in preference order (t2i upscale has --upscale and --scale): the first the command has
        candidates = FLAGS.get(name, ())
        candidates = (candidates,) if isinstance(candidates, str) else candidates
        flag = next((f for f in candidates if available is None or f in available), None)
        if flag is not None:
            flags.append(flag)
    return f"{message} ({' / '.join(flags)})" if flags else message


def _one_line(message: str) -> str:
    """An error raised in a DataLoader worker arrives wrapped with the worker's traceback
    ("Caught T2IError in DataLoader worker process 0. Original Traceback ..."): keep its own line."""
    if "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return message


class _OneLineErrors(TyperGroup):
    """The root group. Sub-commands run inside its ``invoke``, so catching here covers every
    command; they are built from :data:`COMMANDS` when first asked for."""

    _built: dict = {}

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        if name not in self._built:
            module_name, attribute, example = COMMANDS[name]
            module = importlib.import_module(module_name)
            target = getattr(module, attribute)
            if isinstance(target, typer.Typer):  # a group, even of one command (eval-encoder train)
                command = typer.main.get_group(target)
            else:  # one command: a Typer app of its own
                single = typer.Typer(add_completion=False)
                single.command(name, epilog=getattr(module, example))(target)
                command = typer.main.get_command(single)
            command.name = name
            self._built[name] = command
        return self._built[name]

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
        # A switch's off side counts too (--unconditional of --conditional/--unconditional).
        return {option for param in command.params for option in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))}


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="t2i: captions to images with a conditional GAN (GAN-INT-CLS or DF-GAN) and an FSRCNN/SRCNN upscaler.",
    epilog='Example: t2i generate "this flower has pink petals" -n 4 --out pink.png',
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"t2i {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[_RichOnFirstUse()],
                        force=True)


class _RichOnFirstUse(logging.Handler):
    """Rich's log handler on stderr, made when the first record arrives: importing rich takes
    ~0.1 s, and a command that logs nothing (a plain generate) need not pay it."""

    def __init__(self):
        super().__init__()
        self._rich = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.console import Console
            from rich.logging import RichHandler

            self._rich = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
            self._rich.setFormatter(self.formatter)
        self._rich.emit(record)


def main() -> None:
    from t2i_cli.devices import keep_freed_memory

    keep_freed_memory()  # before any tensor: every command allocates large CPU blocks
    app()
