"""The demo's conversation: every picture drawn in one browser session, which one is the current
flower, and the ``t2i`` command that draws each picture again, bit for bit.

A flower is its noise (:class:`~t2i_cli.sampling.NoiseRecipe`, drawn at a truncation) and its
caption: the noise carries pose and framing, the caption the content (Reed et al. 2016). So
"keep this flower, change the caption" is the same noise with a new caption, a variation is the
noise moved a little towards a fresh seed's, and a blend walks the caption embedding with the noise
held. No Gradio here: ``web.py`` puts this on the page.

Every picture is drawn alone, in a batch of one, as its command draws it: a convolution's
arithmetic depends on the batch's size, so a picture drawn beside others could differ from its
command's by a grey level. A blend strip is the exception: it is drawn (and enlarged) as
``t2i interpolate`` draws it, the whole strip at once, and its command writes the strip's folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import zipfile
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property

from PIL import Image

from t2i_cli.errors import T2IError
from t2i_cli.pipeline import T2IPipeline, interpolation_file, validate_captions
from t2i_cli.sampling import NO_TRUNCATION

MAX_VARIATIONS = 8
MAX_BLEND_STEPS = 16
MAX_PICTURES = 200  # a conversation's pictures kept in memory (up to about 100 kB each): the oldest go first


@dataclass(frozen=True)
class Settings:
    """How new noise is drawn and how pictures are enlarged."""

    truncation: float = NO_TRUNCATION
    rerank: int = 1
    upscale: int = 1
    sr_method: str = "auto"


@dataclass(frozen=True)
class Blend:
    """Where a blend picture lies: ``weight`` of the way from caption ``first`` to ``second``, in a
    strip of ``steps`` drawn at once."""

    first: str
    second: str
    steps: int
    step: int

    @property
    def weight(self) -> float:
        return self.step / (self.steps - 1)


@dataclass(frozen=True)
class Picture:
    """One image of the conversation: the 64 px drawing and, when asked for, its enlargement."""

    number: int  # from 1, in the order drawn
    kind: str  # drawn | kept | variation | blend | upscaled
    caption: str  # the caption it was drawn with (a blend's: the nearer end; see ``blend``)
    label: str  # what the page says the picture is
    noise: str  # its NoiseRecipe, with the candidate reranking chose
    truncation: float
    rerank: int
    small: bytes  # PNG, at the generator's size
    big: bytes | None  # PNG, enlarged
    upscale: int
    upscaler: str | None
    command_name: str  # generate | interpolate
    captions: tuple[str, ...]  # the command's captions
    options: tuple[str, ...]  # the command's options, but for its upscaling flags and --out
    seed: int | None = None  # the seed it was drawn from, if one (drawn pictures and variations)
    blend: Blend | None = None
    sr_method: str = "auto"
    sr_weights: str | None = None  # the demo's own SR weights for this picture's scale, if it has some

    def command(self, *, enlarged: bool | None = None) -> str:
        """The shell command that writes this picture again (see :meth:`output`): the enlarged one
        (the default, where there is one) or the 64 px one."""
        enlarged = self.big is not None if enlarged is None else enlarged
        options = list(self.options)
        if enlarged and self.upscale > 1:
            options += ["--upscale", str(self.upscale)] + (["--sr-method", self.sr_method] if self.sr_method != "auto" else [])
            options += ["--sr-weights", self.sr_weights] if self.sr_weights else []
        written = self.output(enlarged=enlarged)
        options += ["--out", written if self.blend is None else written.rsplit("/", 1)[0] + "/"]  # a blend's: its strip's folder
        if any(caption.startswith("-") for caption in self.captions):  # "--": a caption is never read as a flag
            return shlex.join(["t2i", self.command_name, *options, "--", *self.captions])
        return shlex.join(["t2i", self.command_name, *self.captions, *options])

    def output(self, *, enlarged: bool | None = None) -> str:
        """The file :meth:`command` writes this picture to (a blend's command writes its whole strip)."""
        enlarged = self.big is not None if enlarged is None else enlarged
        suffix = f"-x{self.upscale}" if enlarged and self.upscale > 1 else ""
        if self.blend is None:
            return f"flower-{self.number}{suffix}.png"
        return f"blend-{self.number}{suffix}/{interpolation_file(self.blend.step)}"

    @cached_property
    def small_name(self) -> str:
        """:func:`content_name` of the 64 px PNG (worked out once)."""
        return content_name(self.small)

    @cached_property
    def big_name(self) -> str | None:
        return content_name(self.big) if self.big is not None else None

    @property
    def size(self) -> tuple[int, int]:
        """The final image's (width, height): enlarged where it was."""
        with Image.open(io.BytesIO(self.big if self.big is not None else self.small)) as image:
            return image.size

    def record(self) -> dict:
        """What the session's download says about the picture (no image bytes)."""
        skipped = ("small", "big", "command_name", "captions", "options", "sr_weights")
        entry = {k: v for k, v in asdict(self).items() if k not in skipped}
        entry["command"], entry["writes"] = self.command(), self.output()
        if self.big is not None:
            entry["command_64px"], entry["writes_64px"] = self.command(enlarged=False), self.output(enlarged=False)
        entry["files"] = self.file_names()
        return entry

    def file_names(self) -> list[str]:
        """Its files in the session's download."""
        names = [f"{self.number:03d}-64px.png"]
        if self.big is not None:
            names.append(f"{self.number:03d}-x{self.upscale}.png")
        return names


def png_bytes(image: Image.Image) -> bytes:
    """``image`` as PNG, encoded as ``t2i generate`` writes it (grid.save_image)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def content_name(data: bytes) -> str:
    """A name made from the bytes: the page's files are named by what they hold."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class Conversation:
    """What one browser session remembers: its pictures and the current flower (a picture's number)."""

    pictures: list[Picture] = field(default_factory=list)
    current: int | None = None
    last_number: int = 0  # the number given to the latest picture

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
        self.last_number += 1
        return self.last_number

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

    ``checkpoint`` and ``encoder`` are the generator and caption encoder as the demo was started
    with them (None: the shipped generator, MiniLM), named in every command; the pipeline's own SR
    weights are named where a command upscales.
    """

    def __init__(self, pipeline: T2IPipeline, *, checkpoint: str | None = None, encoder: str | None = None):
        self.pipeline = pipeline
        self.checkpoint = checkpoint
        self.encoder = encoder

    def _options(self, *options: str, truncation: float = NO_TRUNCATION, rerank: int = 1) -> tuple[str, ...]:
        """A command's options: ``options``, then the sampling settings, checkpoint and encoder where not the defaults."""
        extra = ["--truncation", repr(truncation)] if truncation != NO_TRUNCATION else []
        extra += ["--rerank", str(rerank)] if rerank > 1 else []
        extra += ["--checkpoint", self.checkpoint] if self.checkpoint else []
        extra += ["--encoder", self.encoder] if self.encoder else []
        return (*options, *extra)

    def _sr_weights(self, settings: Settings) -> str | None:
        own = self.pipeline.sr_weights.get(settings.upscale) if settings.sr_method != "bicubic" and settings.upscale > 1 else None
        return str(own) if own is not None else None

    def _generate_one(self, conversation: Conversation, *, kind: str, caption: str, label: str, options: tuple[str, ...],
                      settings: Settings, seed: int | None = None, **draw) -> Picture:
        result = self.pipeline(caption, num_images=1, upscale=settings.upscale, sr_method=settings.sr_method,
                               truncation=settings.truncation, rerank=settings.rerank, seed=seed or 0, **draw)
        return Picture(
            number=conversation.next_number(), kind=kind, caption=caption, label=label, noise=str(result.noise[0]),
            truncation=settings.truncation, rerank=settings.rerank, small=png_bytes(result.images[0]),
            big=png_bytes(result.upscaled[0]) if result.upscaled is not None else None, upscale=settings.upscale,
            upscaler=result.upscaler, command_name="generate", captions=(caption,), options=options, seed=seed,
            sr_method=settings.sr_method, sr_weights=self._sr_weights(settings),
        )

    def draw(self, conversation: Conversation, caption: str, count: int, seed: int, settings: Settings) -> list[Picture]:
        """``count`` new flowers for ``caption``, seeds ``seed`` to ``seed + count - 1``."""
        caption = validate_captions([caption])[0]
        pictures = []
        for s in range(seed, seed + count):
            options = self._options("--seed", str(s), truncation=settings.truncation, rerank=settings.rerank)
            pictures.append(self._generate_one(conversation, kind="drawn", caption=caption, label=f"{caption} (seed {s})",
                                               options=options, settings=settings, seed=s))
        return conversation.add(pictures, current=True)

    def keep(self, conversation: Conversation, caption: str, settings: Settings) -> list[Picture]:
        """The current flower's noise (and truncation) with a new caption: pose and framing kept."""
        caption = validate_captions([caption])[0]
        flower = conversation.current_picture()
        own = replace(settings, truncation=flower.truncation, rerank=1)
        options = self._options("--noise-from", flower.noise, truncation=flower.truncation)
        return conversation.add([self._generate_one(conversation, kind="kept", caption=caption,
                                                    label=f"{caption} (the flower of #{flower.number})", options=options,
                                                    settings=own, noise_from=flower.noise)], current=True)

    @staticmethod
    def _whole_flower(conversation: Conversation, action: str) -> Picture:
        """The current flower, which must be a flower of one caption: a blend's step lies between two."""
        flower = conversation.current_picture()
        if flower.blend is not None:
            raise T2IError(f"#{flower.number} is a step of a blend, between two captions: {action} start from one caption's "
                           f"flower (keep #{flower.number} with a caption first)")
        return flower

    def vary(self, conversation: Conversation, count: int, strength: float, seed: int, settings: Settings) -> list[Picture]:
        """``count`` variations of the current flower: its noise moved by ``strength`` towards seeds ``seed``, ``seed + 1``, ..."""
        flower = self._whole_flower(conversation, "variations")
        if not 1 <= count <= MAX_VARIATIONS:
            raise T2IError(f"ask for 1 to {MAX_VARIATIONS} variations, not {count}")
        own = replace(settings, truncation=flower.truncation)
        pictures = []
        for s in range(seed, seed + count):
            options = self._options("--variation-of", flower.noise, "--strength", repr(strength), "--seed", str(s),
                                    truncation=flower.truncation, rerank=settings.rerank)
            pictures.append(self._generate_one(conversation, kind="variation", caption=flower.caption,
                                               label=f"{flower.caption} (#{flower.number} varied by {strength:g}, seed {s})",
                                               options=options, settings=own, seed=s, variation_of=flower.noise, strength=strength))
        return conversation.add(pictures, current=False)

    def _strip(self, first: str, second: str, steps: int, noise: str, truncation: float, settings: Settings):
        return self.pipeline.interpolate(first, second, steps=steps, noise_from=noise, truncation=truncation,
                                         upscale=settings.upscale, sr_method=settings.sr_method)

    def blend(self, conversation: Conversation, caption: str, steps: int, settings: Settings) -> list[Picture]:
        """A strip from the current flower to ``caption``: the caption embedding walked, the noise held.
        Its pictures' commands each write the whole strip, drawn at once as it was here."""
        flower = self._whole_flower(conversation, "blends")
        caption = validate_captions([caption])[0]
        if not 2 <= steps <= MAX_BLEND_STEPS:
            raise T2IError(f"a blend has 2 to {MAX_BLEND_STEPS} steps, not {steps}")
        result = self._strip(flower.caption, caption, steps, flower.noise, flower.truncation, settings)
        options = self._options("--noise-from", flower.noise, "--steps", str(steps), truncation=flower.truncation)
        pictures = []
        for step, image in enumerate(result.images):
            blend = Blend(flower.caption, caption, steps, step)
            pictures.append(Picture(
                number=conversation.next_number(), kind="blend", caption=flower.caption if blend.weight < 0.5 else caption,
                label=f"{blend.weight:.2f} of the way from #{flower.number} to: {caption}", noise=flower.noise,
                truncation=flower.truncation, rerank=1, small=png_bytes(image),
                big=png_bytes(result.upscaled[step]) if result.upscaled is not None else None, upscale=settings.upscale,
                upscaler=result.upscaler, command_name="interpolate", captions=(flower.caption, caption), options=options,
                blend=blend, sr_method=settings.sr_method, sr_weights=self._sr_weights(settings),
            ))
        return conversation.add(pictures, current=False)

    def upscale(self, conversation: Conversation, settings: Settings) -> list[Picture]:
        """The current flower enlarged at ``settings``' factor and method, not drawn again: its
        command is the flower's own with these upscaling flags. (A blend's step is enlarged with
        its strip, as its command enlarges it: the SR network takes small images in batches.)"""
        flower = conversation.current_picture()
        if settings.upscale < 2:
            raise T2IError("choose an upscale factor of 2, 3 or 4 to enlarge the flower")
        upscaler = self.pipeline.upscaler(settings.upscale, settings.sr_method)
        if flower.blend is not None:
            b = flower.blend
            big = self._strip(b.first, b.second, b.steps, flower.noise, flower.truncation, settings).upscaled[b.step]
        else:
            with Image.open(io.BytesIO(flower.small)) as small:
                big = upscaler.upscale_images([small.convert("RGB")])[0]
        picture = replace(flower, number=conversation.next_number(), kind="upscaled", big=png_bytes(big), upscale=settings.upscale,
                          upscaler=upscaler.describe(), sr_method=settings.sr_method, sr_weights=self._sr_weights(settings),
                          label=f"{flower.label}, enlarged x{settings.upscale}")
        return conversation.add([picture], current=True)
