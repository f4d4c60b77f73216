"""The demo's conversation: every picture drawn in one browser session, which one is the current
flower, and the ``t2i`` command that draws each picture again, bit for bit.

A flower is its noise (:class:`~t2i_cli.sampling.NoiseRecipe`, drawn at a truncation) and its
caption: the noise carries pose and framing, the caption the content (Reed et al. 2016). So
"keep this flower, change the caption" is the same noise with a new caption, a variation is the
noise moved a little towards a fresh seed's, and a blend walks the caption embedding with the noise
held. No Gradio here: ``web.py`` puts this on the page.

Every picture is drawn alone, in a batch of one, as its command draws it: a convolution's
arithmetic depends on the batch's size, so a picture drawn beside others could differ from its
command's by a grey level. A blend strip is the exception: it is drawn as ``t2i interpolate``
draws it, the whole strip at once, and its command writes the strip's folder.
"""

from __future__ import annotations

import io
import json
import shlex
import zipfile
from dataclasses import asdict, dataclass, field, replace

from PIL import Image

from t2i_cli.errors import T2IError
from t2i_cli.pipeline import T2IPipeline
from t2i_cli.sampling import NO_TRUNCATION

MAX_VARIATIONS = 8
MAX_BLEND_STEPS = 16
MAX_PICTURES = 500  # a conversation's pictures kept in memory (about 100 kB each, upscaled): the oldest go first


@dataclass(frozen=True)
class Settings:
    """How new noise is drawn and how pictures are enlarged."""

    truncation: float = NO_TRUNCATION
    rerank: int = 1
    upscale: int = 1
    sr_method: str = "auto"


@dataclass(frozen=True)
class Picture:
    """One image of the conversation: the 64 px drawing and, when asked for, its enlargement."""

    number: int  # from 1, in the order drawn
    kind: str  # drawn | kept | variation | blend | upscaled
    caption: str  # the caption a "keep" or "blend" starting here goes on from
    label: str  # what the page says the picture is
    noise: str  # its NoiseRecipe, with the candidate reranking chose
    truncation: float
    small: bytes  # PNG, at the generator's size
    big: bytes | None  # PNG, enlarged
    upscale: int
    upscaler: str | None
    args: tuple[str, ...]  # the t2i command without its upscaling flags and --out
    folder_file: str | None = None  # a blend's: its file in the folder the command writes
    sr_method: str = "auto"
    sr_weights: str | None = None  # the demo's own SR weights for this picture's scale, if it has some

    def command(self, *, enlarged: bool | None = None) -> str:
        """The shell command that writes this picture again: the enlarged one (the default,
        where there is one) or the 64 px one."""
        enlarged = self.big is not None if enlarged is None else enlarged
        args = list(self.args)
        if enlarged and self.upscale > 1:
            args += ["--upscale", str(self.upscale)] + (["--sr-method", self.sr_method] if self.sr_method != "auto" else [])
            args += ["--sr-weights", self.sr_weights] if self.sr_weights else []
        suffix = f"-x{self.upscale}" if enlarged and self.upscale > 1 else ""
        if self.folder_file is None:
            args += ["--out", f"flower-{self.number}{suffix}.png"]
            return shlex.join(["t2i", *args])
        folder = f"blend-{self.number}{suffix}"
        return f"{shlex.join(['t2i', *args, '--out', folder + '/'])}   # this picture: {folder}/{self.folder_file}"

    @property
    def size(self) -> tuple[int, int]:
        """The final image's (width, height): enlarged where it was."""
        with Image.open(io.BytesIO(self.big if self.big is not None else self.small)) as image:
            return image.size

    def record(self) -> dict:
        """What the session's download says about the picture (no image bytes)."""
        entry = {k: v for k, v in asdict(self).items() if k not in ("small", "big", "args", "folder_file", "sr_weights")}
        entry["command"] = self.command()
        if self.big is not None:
            entry["command_64px"] = self.command(enlarged=False)
        entry["files"] = self.file_names()
        return entry

    def file_names(self) -> list[str]:
        names = [f"{self.number:03d}-64px.png"]
        if self.big is not None:
            names.append(f"{self.number:03d}-x{self.upscale}.png")
        return names


def png_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG, encoded as ``t2i generate`` writes it (grid.save_image)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Conversation:
    """What one browser session remembers: its pictures and the current flower (a picture's number)."""

    pictures: list[Picture] = field(default_factory=list)
    current: int | None = None
    drawn: int = 0  # pictures numbered so far

    def picture(self, number: int) -> Picture:
        for picture in self.pictures:
            if picture.number == number:
                return picture
        raise T2IError(f"there is no picture #{number} in this conversation" + (
            f" (it has #{self.pictures[0].number} to #{self.pictures[-1].number})" if self.pictures else " yet"))

    def pick(self, number: int) -> Picture:
        picture = self.picture(number)
        self.current = number
        return picture

    def current_picture(self) -> Picture:
        if self.current is None:
            raise T2IError("pick a flower first: draw one, then click it")
        return self.picture(self.current)

    def add(self, pictures: list[Picture], *, current: bool) -> list[Picture]:
        """Keep ``pictures``, the first becoming the current flower if ``current``, and drop the
        oldest past MAX_PICTURES (a current flower dropped so leaves none)."""
        self.pictures += pictures
        del self.pictures[: max(0, len(self.pictures) - MAX_PICTURES)]
        if current and pictures:
            self.current = pictures[0].number
        if self.current is not None and self.current < self.pictures[0].number:
            self.current = None
        return pictures

    def next_number(self) -> int:
        self.drawn += 1
        return self.drawn

    def record(self) -> dict:
        return {"current": self.current, "pictures": [picture.record() for picture in self.pictures]}

    def zip_bytes(self) -> bytes:
        """Every picture (64 px and enlarged) and ``conversation.json`` with captions, noise, settings and commands."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for picture in self.pictures:
                for name, data in zip(picture.file_names(), (picture.small, picture.big)):
                    archive.writestr(name, data)
            archive.writestr("conversation.json", json.dumps(self.record(), indent=2, ensure_ascii=False) + "\n")
        return buffer.getvalue()


class Artist:
    """Draws the conversation's pictures with one pipeline and says how to draw each again.

    ``checkpoint`` is the generator as the demo was started with it (None: the shipped one),
    named in every command; the pipeline's own SR weights are named where a command upscales.
    """

    def __init__(self, pipeline: T2IPipeline, *, checkpoint: str | None = None):
        self.pipeline = pipeline
        self.checkpoint = checkpoint

    def _args(self, *args: str, truncation: float = NO_TRUNCATION, rerank: int = 1) -> tuple[str, ...]:
        """A command's arguments: ``args``, then the sampling settings and the checkpoint where they are not the defaults."""
        extra = ["--truncation", repr(truncation)] if truncation != NO_TRUNCATION else []
        extra += ["--rerank", str(rerank)] if rerank > 1 else []
        extra += ["--checkpoint", self.checkpoint] if self.checkpoint else []
        return (*args, *extra)

    def _sr_weights(self, settings: Settings) -> str | None:
        own = self.pipeline.sr_weights.get(settings.upscale) if settings.sr_method != "bicubic" else None
        return str(own) if own is not None else None

    def _generate_one(self, conversation: Conversation, *, kind: str, caption: str, label: str, args: tuple[str, ...],
                      settings: Settings, **draw) -> Picture:
        result = self.pipeline(caption, num_images=1, upscale=settings.upscale, sr_method=settings.sr_method,
                               truncation=settings.truncation, **draw)
        return Picture(
            number=conversation.next_number(), kind=kind, caption=result.captions[0], label=label, noise=str(result.noise[0]),
            truncation=settings.truncation, small=png_bytes(result.images[0]),
            big=png_bytes(result.upscaled[0]) if result.upscaled is not None else None, upscale=settings.upscale,
            upscaler=result.upscaler, args=args, sr_method=settings.sr_method, sr_weights=self._sr_weights(settings),
        )

    def draw(self, conversation: Conversation, caption: str, count: int, seed: int, settings: Settings) -> list[Picture]:
        """``count`` new flowers for ``caption``, seeds ``seed`` to ``seed + count - 1``."""
        pictures = []
        for s in range(seed, seed + count):
            args = self._args("generate", caption, "--seed", str(s), truncation=settings.truncation, rerank=settings.rerank)
            pictures.append(self._generate_one(conversation, kind="drawn", caption=caption, label=f"{caption} (seed {s})",
                                               args=args, settings=settings, seed=s, rerank=settings.rerank))
        return conversation.add(pictures, current=True)

    def keep(self, conversation: Conversation, caption: str, settings: Settings) -> list[Picture]:
        """The current flower's noise (and truncation) with a new caption: pose and framing kept."""
        flower = conversation.current_picture()
        own = replace(settings, truncation=flower.truncation, rerank=1)
        args = self._args("generate", caption, "--noise-from", flower.noise, truncation=flower.truncation)
        return conversation.add([self._generate_one(conversation, kind="kept", caption=caption,
                                                    label=f"{caption} (the flower of #{flower.number})", args=args,
                                                    settings=own, noise_from=flower.noise)], current=True)

    def vary(self, conversation: Conversation, count: int, strength: float, seed: int, settings: Settings) -> list[Picture]:
        """``count`` variations of the current flower: its noise moved by ``strength`` towards seeds ``seed``, ``seed + 1``, ..."""
        flower = conversation.current_picture()
        if not 1 <= count <= MAX_VARIATIONS:
            raise T2IError(f"ask for 1 to {MAX_VARIATIONS} variations, not {count}")
        own = replace(settings, truncation=flower.truncation)
        pictures = []
        for s in range(seed, seed + count):
            args = self._args("generate", flower.caption, "--variation-of", flower.noise, "--strength", repr(strength),
                              "--seed", str(s), truncation=flower.truncation, rerank=settings.rerank)
            pictures.append(self._generate_one(conversation, kind="variation", caption=flower.caption,
                                               label=f"{flower.caption} (#{flower.number} varied by {strength:g}, seed {s})",
                                               args=args, settings=own, seed=s, variation_of=flower.noise, strength=strength,
                                               rerank=settings.rerank))
        return conversation.add(pictures, current=False)

    def blend(self, conversation: Conversation, caption: str, steps: int, settings: Settings) -> list[Picture]:
        """A strip from the current flower to ``caption``: the caption embedding walked, the noise held.
        Its pictures' commands each write the whole strip, drawn at once as it was here."""
        from t2i_cli.commands.generate import interpolation_name

        flower = conversation.current_picture()
        if not 2 <= steps <= MAX_BLEND_STEPS:
            raise T2IError(f"a blend has 2 to {MAX_BLEND_STEPS} steps, not {steps}")
        result = self.pipeline.interpolate(flower.caption, caption, steps=steps, noise_from=flower.noise, truncation=flower.truncation,
                                           upscale=settings.upscale, sr_method=settings.sr_method)
        target = result.captions[0].split("  ->  ", 1)[1]
        args = self._args("interpolate", flower.caption, target, "--noise-from", flower.noise, "--steps", str(steps),
                          truncation=flower.truncation)
        pictures = []
        for step, image in enumerate(result.images):
            weight = step / (steps - 1)
            pictures.append(Picture(
                number=conversation.next_number(), kind="blend", caption=flower.caption if weight < 0.5 else target,
                label=f"{weight:.2f} of the way from #{flower.number} to: {target}", noise=flower.noise,
                truncation=flower.truncation, small=png_bytes(image),
                big=png_bytes(result.upscaled[step]) if result.upscaled is not None else None, upscale=settings.upscale,
                upscaler=result.upscaler, args=args, folder_file=interpolation_name(step), sr_method=settings.sr_method,
                sr_weights=self._sr_weights(settings),
            ))
        return conversation.add(pictures, current=False)

    def upscale(self, conversation: Conversation, settings: Settings) -> list[Picture]:
        """The current flower enlarged at ``settings``' factor and method, not drawn again: its
        command is the flower's own with these upscaling flags."""
        flower = conversation.current_picture()
        if settings.upscale < 2:
            raise T2IError("choose an upscale factor of 2, 3 or 4 to enlarge the flower")
        upscaler = self.pipeline.upscaler(settings.upscale, settings.sr_method)
        with Image.open(io.BytesIO(flower.small)) as small:
            big = upscaler.upscale_images([small.convert("RGB")])[0]
        picture = replace(flower, number=conversation.next_number(), kind="upscaled", big=png_bytes(big), upscale=settings.upscale,
                          upscaler=upscaler.describe(), sr_method=settings.sr_method, sr_weights=self._sr_weights(settings),
                          label=f"{flower.label}, enlarged x{settings.upscale}")
        return conversation.add([picture], current=True)
