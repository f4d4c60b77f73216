"""The browser demo: a Gradio page over the same :class:`T2IPipeline` the CLI uses.

No model code lives here: the page collects a caption and settings, calls the pipeline, and shows
the 64 px images beside their upscaled versions in a chat. The chat remembers (``chat.py``): each
browser session has its conversation, whose pictures can be picked as the current flower, kept
with a new caption, varied, blended into another caption and enlarged, and each shows the ``t2i``
command that draws it again. Named API endpoints serve ``gradio_client`` callers, one session per
client: ``/generate``, ``/pick``, ``/keep``, ``/variations``, ``/blend``, ``/upscale_this``,
``/conversation``, ``/download``, ``/interpolate`` and ``/restyle``.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image

from srcnn.errors import SRError
from t2i_cli.atomic import atomic_file
from t2i_cli.chat import MAX_BLEND_STEPS, Artist, Conversation, Picture, Settings, content_name, png_bytes
from t2i_cli.data.images import open_image
from t2i_cli.errors import T2IError
from t2i_cli.pipeline import SR_METHODS, T2IPipeline, check_interpolation, check_request
from t2i_cli.sampling import MAX_RERANK

log = logging.getLogger(__name__)

MAX_IMAGES_PER_ANSWER = 8
# Seconds the page's image files, and Gradio's copies of them, are kept after their last use: a
# conversation's pictures stay visible this long (its state, with every picture, lives as long).
FILE_LIFETIME = 4 * 3600
CLEAN_EVERY = 600  # seconds between Gradio's sweeps of its copies
EXAMPLES = [
    "this flower has bright pink petals and a yellow center",
    "a white flower with five broad rounded petals",
    "this flower has red petals that are ruffled at the edges",
    "a purple flower with a cluster of thin petals",
    "a yellow sunflower with a dark brown center",
]


def refuse(message: str) -> gr.Error:
    """A user error: one line in the server log and a message on the page, no traceback."""
    log.info("refused a request: %s", message)
    return gr.Error(message, print_exception=False)


class DemoBackend:
    """Validates requests and runs them one at a time through the shared pipeline.

    One lock: the models are shared, and the caption tokenizer must not be entered by two
    threads at once; torch already uses every core for one request. A conversation is changed
    only under it too, so one client's overlapping requests leave its history whole.
    """

    def __init__(self, pipeline: T2IPipeline, files: Path | None = None, *, checkpoint: str | None = None,
                 encoder: str | None = None):
        self.pipeline = pipeline
        self.artist = Artist(pipeline, checkpoint=checkpoint, encoder=encoder)
        self.lock = threading.Lock()
        self.files_lock = threading.Lock()
        self.files = Path(files) if files is not None else Path(tempfile.mkdtemp(prefix="t2i-demo-"))
        self.swept = time.time()
        self.small_size = f"{pipeline.model_config.image_size} px"  # what the generator draws (64 px, or 128)

    def describe(self) -> str:
        sr = [self.pipeline.upscaler(scale, "auto").describe() for scale in (2, 3, 4)]
        return f"**Loaded:** {self.pipeline.describe()}.  \n**Upscaling:** {', '.join(sr)}."

    def _file(self, image: Image.Image | bytes, name: str | None = None, *, file_name: str | None = None) -> str:
        """A file holding the image (an image, or its PNG bytes; other bytes need a ``file_name``),
        named by its content (``name``: :func:`~t2i_cli.chat.content_name`, worked out here if
        not given) and written whole before it is named: Gradio once wrote a returned PIL image in
        place, and a download read it half rewritten. Files unused for FILE_LIFETIME go."""
        data = png_bytes(image) if isinstance(image, Image.Image) else image
        name = name or content_name(data)
        path = self.files / (f"{name}.png" if file_name is None else f"{name}/{file_name}")
        with self.files_lock:  # one writer of a name at a time, and the sweep never races a reuse
            if time.time() - self.swept > CLEAN_EVERY:
                self._sweep()
            if path.exists():
                os.utime(path)  # in use again: kept another FILE_LIFETIME
            else:
                path.parent.mkdir(exist_ok=True)
                with atomic_file(path) as partial:
                    partial.write_bytes(data)
        return str(path)

    def _sweep(self) -> None:
        """Remove the files (and emptied folders) unused for FILE_LIFETIME; under ``files_lock``."""
        cutoff, self.swept = time.time() - FILE_LIFETIME, time.time()
        for old in sorted(self.files.rglob("*"), reverse=True):  # a folder's files before the folder
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink()
            elif old.is_dir() and not any(old.iterdir()):
                old.rmdir()

    @staticmethod
    def _seed(seed: float | int | None, random_seed: bool) -> int:
        if random_seed or seed is None:
            return secrets.randbelow(2**31)
        if float(seed) != int(seed) or seed < 0:
            raise refuse(f"the seed must be a whole number of 0 or more, got {seed}")
        return int(seed)

    @staticmethod
    def _settings(upscale, sr_method, truncation=1.0, rerank=1) -> Settings:
        # Two decimals: a slider's 0.7000000000000001 is drawn, and written in commands, as 0.7.
        return Settings(truncation=round(float(truncation), 2), rerank=int(rerank), upscale=int(upscale), sr_method=sr_method)

    def _run(self, action, *args):
        """``action(*args)`` under the lock, a user error refused as a message."""
        try:
            with self.lock:
                return action(*args)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None

    def picture_file(self, picture: Picture, *, enlarged: bool) -> str:
        if enlarged:
            return self._file(picture.big, picture.big_name)
        return self._file(picture.small, picture.small_name)

    def gallery_items(self, pictures: list[Picture]) -> list[tuple[str, str]]:
        """Each picture at the generator's size, then enlarged when it was, captioned with its number and the
        command that writes it again (and, for a blend's, which of the strip's files it is)."""
        items = []
        for picture in pictures:
            for enlarged in (False, True) if picture.big is not None else (False,):
                size = f"{picture.upscale}x ({picture.upscaler})" if enlarged else self.small_size
                text = f"#{picture.number}, {size}: {picture.command(enlarged=enlarged)}"
                if picture.blend is not None:
                    text += f"  (this picture: {picture.output(enlarged=enlarged)})"
                items.append((self.picture_file(picture, enlarged=enlarged), text))
        return items

    def picture_items(self, conversation: Conversation) -> list[tuple[str, str]]:
        """One item per picture of the conversation (its final image), in order: what is picked from."""
        return [(self.picture_file(p, enlarged=p.big is not None), f"#{p.number}: {p.label}") for p in conversation.pictures]

    @staticmethod
    def summary(conversation: Conversation, pictures: list[Picture]) -> dict:
        """What an answer drew, for API callers: each picture's record, and the current flower."""
        return {"pictures": [picture.record() for picture in pictures], "current": conversation.current}

    # --- the chat's actions, each on one session's conversation ---------------------------------
    def generate(self, caption: str, num_images: int, seed: float | int | None, random_seed: bool, upscale: int,
                 sr_method: str, truncation: float = 1.0, rerank: int = 1, conversation: Conversation | None = None,
                 ) -> tuple[list[tuple[str, str]], dict]:
        """New flowers for a caption: gallery items (each 64 px image followed by its upscaled
        version) and a summary. The first becomes the conversation's current flower."""
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write a caption first: the page needs a description of the flower.")
        num_images = int(num_images)
        if not 1 <= num_images <= MAX_IMAGES_PER_ANSWER:
            raise refuse(f"Ask for between 1 and {MAX_IMAGES_PER_ANSWER} images, not {num_images}.")
        used_seed = self._seed(seed, random_seed)
        settings = self._settings(upscale, sr_method, truncation, rerank)
        try:  # only a request the pipeline accepts waits for the models
            check_request(caption, num_images=num_images, seed=used_seed, upscale=settings.upscale, sr_method=sr_method,
                          truncation=settings.truncation, rerank=settings.rerank)
        except T2IError as exc:
            raise refuse(str(exc)) from None
        conversation = conversation if conversation is not None else Conversation()
        pictures = self._run(self.artist.draw, conversation, caption, num_images, used_seed, settings)
        summary = self.summary(conversation, pictures)
        summary.update({
            "caption": pictures[0].caption, "seeds": list(range(used_seed, used_seed + num_images)), "upscale": settings.upscale,
            "upscaler": pictures[0].upscaler or "none", "sizes": [list(p.size) for p in pictures],
        })
        return self.gallery_items(pictures), summary

    def pick(self, conversation: Conversation, number: float | int | None) -> dict:
        """Make picture ``number`` the current flower; its record (as every answer gives them)."""
        if number is None or not math.isfinite(number) or float(number) != int(number):
            raise refuse(f"pick a picture by its number (#1, #2, ...), not {number}")
        picture = self._run(conversation.pick, int(number))
        return self.summary(conversation, [picture])

    def keep(self, conversation: Conversation, caption: str, upscale: int, sr_method: str) -> tuple[list, dict]:
        """The current flower drawn with a new caption: its noise kept."""
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write the new caption to draw the current flower with.")
        pictures = self._run(self.artist.keep, conversation, caption, self._settings(upscale, sr_method))
        return self.gallery_items(pictures), self.summary(conversation, pictures)

    def variations(self, conversation: Conversation, count: int, strength: float, seed: float | int | None, random_seed: bool,
                   upscale: int, sr_method: str, rerank: int = 1) -> tuple[list, dict]:
        """``count`` variations of the current flower, its noise moved by ``strength``."""
        strength = round(float(strength), 2)
        if not 0 < strength <= 1:
            raise refuse(f"the variation strength must lie in (0, 1], not {strength}")
        used_seed = self._seed(seed, random_seed)
        pictures = self._run(self.artist.vary, conversation, int(count), strength, used_seed,
                             self._settings(upscale, sr_method, rerank=rerank))
        return self.gallery_items(pictures), self.summary(conversation, pictures)

    def blend(self, conversation: Conversation, caption: str, steps: int, upscale: int, sr_method: str) -> tuple[list, dict]:
        """A strip from the current flower to ``caption``, its noise held."""
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write the caption to blend the current flower into.")
        pictures = self._run(self.artist.blend, conversation, caption, int(steps), self._settings(upscale, sr_method))
        return self.gallery_items(pictures), self.summary(conversation, pictures)

    def upscale_this(self, conversation: Conversation, upscale: int, sr_method: str) -> tuple[list, dict]:
        """The current flower enlarged at another factor or method, without drawing it again."""
        pictures = self._run(self.artist.upscale, conversation, self._settings(upscale, sr_method))
        return self.gallery_items(pictures), self.summary(conversation, pictures)

    def download(self, conversation: Conversation) -> str:
        """A zip of the conversation's pictures with ``conversation.json``; its path."""
        if not conversation.pictures:
            raise refuse("Nothing to download yet: draw a flower first.")
        with self.lock:
            data = conversation.zip_bytes()
        return self._file(data, file_name="t2i-conversation.zip")

    def restyle(self, photo: Image.Image | str | None, caption: str, photo_caption: str | None, upscale: int,
                sr_method: str) -> tuple[list[tuple[str, str]], dict]:
        """Gallery items: the photo as the generator sees it, its redrawing (with a photo caption),
        the restyled image, then each of those upscaled; and a summary. ``photo``: an image, or the
        path of an upload, decoded here by the project's own loader (its checks, its messages)."""
        if photo is None:
            raise refuse("Upload a photo first: its layout is what the new caption is drawn into.")
        if not isinstance(photo, Image.Image):
            try:
                photo = open_image(photo, what="the photo")
            except T2IError as exc:
                raise refuse(f"{exc}: upload a JPEG, PNG or WebP photo.") from None
        if not isinstance(caption, str) or not caption.strip():
            raise refuse("Write a caption: what the photo's flower should become.")
        photo_caption = photo_caption if isinstance(photo_caption, str) and photo_caption.strip() else None
        try:
            check_request(caption, upscale=int(upscale), sr_method=sr_method)
            with self.lock:
                result = self.pipeline.restyle(photo, caption, photo_caption=photo_caption, upscale=int(upscale), sr_method=sr_method)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None
        items: list[tuple[str, str]] = []
        for images, size in ((result.small, self.small_size), (result.upscaled, f"×{int(upscale)} ({result.upscaler})")):
            if images is None:
                continue
            items.append((self._file(images.photo), f"your photo, {size}"))
            if images.reconstruction is not None:
                items.append((self._file(images.reconstruction), f"redrawn as: {result.photo_caption}, {size}"))
            items.append((self._file(images.restyled[0]), f"restyled: {result.captions[0]}, {size}"))
        summary = {"caption": result.captions[0], "photo_caption": result.photo_caption, "upscale": int(upscale),
                   "upscaler": result.upscaler or "none", "sizes": [list(result.final.restyled[0].size)]}
        return items, summary

    def style_note(self) -> str:
        """Which style encoder the Restyle tab uses, or why it cannot run."""
        try:
            self.pipeline.style_encoder()
        except T2IError as exc:
            return f"**Restyling is not available:** {exc}."
        return ("The photo's centre square is encoded into the generator's noise (pose, place, background) by a "
                "style encoder trained for this generator, then drawn with your caption.")

    def interpolate(self, first: str, second: str, steps: int, seed: float | int | None,
                    random_seed: bool) -> list[tuple[str, str]]:
        if not first or not first.strip() or not second or not second.strip():
            raise refuse("Write both captions to interpolate between them.")
        steps = int(steps)
        if not 2 <= steps <= 16:
            raise refuse(f"Use between 2 and 16 steps, not {steps}.")
        used_seed = self._seed(seed, random_seed)
        try:
            check_interpolation(first, second, steps=steps, seed=used_seed)
            with self.lock:
                result = self.pipeline.interpolate(first, second, steps=steps, seed=used_seed)
        except (T2IError, SRError) as exc:
            raise refuse(str(exc)) from None
        return [(self._file(image), f"{i / (steps - 1):.2f}") for i, image in enumerate(result.images)]


# Components whose own checks refuse a value the way the backend does: one log line and a plain
# message. Gradio's Slider, Number and Radio raise their range and choice errors with a traceback in
# the server log. ``is_template`` makes the page draw each as the Gradio component it extends.
def _checked(preprocess, payload):
    try:
        return preprocess(payload)
    except gr.Error as exc:
        raise refuse(exc.message) from None


class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class Number(gr.Number):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload):
        return _checked(super().preprocess, payload)


class PhotoUpload(gr.Image):
    """An image upload handed over as its file, undecoded: Gradio's own preprocessing opens it with
    PIL and answers a text file, an empty file or a decompression bomb with its internals (the
    component's class, the server's temp path, PIL's exception); the backend decodes it instead."""

    is_template = True

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is None and payload.url and payload.url.startswith("data:"):
            import base64

            return base64.b64decode(payload.url.split(",", 1)[-1])
        return payload.path


def _numbers(pictures: list[Picture]) -> str:
    first, last = pictures[0].number, pictures[-1].number
    return f"#{first}" if first == last else f"#{first}–#{last}"


def _answer(kind: str, pictures: list[Picture], conversation: Conversation, **about) -> str:
    """The chat's words for an answer: what was drawn, what was kept, and the pictures' numbers."""
    first = pictures[0]
    if kind == "drawn":
        seeds = [p.seed for p in pictures]
        text = f"**{first.caption}**: new flowers {_numbers(pictures)} (seed{'s' if len(seeds) > 1 else ''} {seeds[0]}" + (
            f"–{seeds[-1]})." if len(seeds) > 1 else ").")
    elif kind == "kept":
        text = (f"**{first.caption}**, drawn with the flower of #{about['source']} (its noise `{first.noise}`: pose and "
                f"framing kept, the content from the new caption): {_numbers(pictures)}.")
    elif kind == "variation":
        text = (f"{len(pictures)} variation{'s' if len(pictures) > 1 else ''} of #{about['source']}, its noise moved "
                f"{about['strength']:g} of the way towards fresh seeds: {_numbers(pictures)}.")
    elif kind == "blend":
        text = f"From #{about['source']} to **{about['target']}** in {len(pictures)} steps, the noise held: {_numbers(pictures)}."
    else:
        text = f"#{about['source']} enlarged ×{first.upscale} ({first.upscaler}), not drawn again: {_numbers(pictures)}."
    return text + f" The current flower is #{conversation.current}. Each image's caption is the `t2i` command that draws it again."


def build_demo(pipeline: T2IPipeline, *, checkpoint: str | None = None, encoder: str | None = None) -> gr.Blocks:
    """The page. ``checkpoint`` and ``encoder``: the generator and caption encoder as the demo was
    started with them (None: the shipped generator, MiniLM), which the pictures' commands name."""
    backend = DemoBackend(pipeline, checkpoint=checkpoint, encoder=encoder)
    # Gradio's copies of the page's images go after FILE_LIFETIME, checked every CLEAN_EVERY: a bounded cache.
    with gr.Blocks(title="t2i: captions to flowers", delete_cache=(CLEAN_EVERY, FILE_LIFETIME)) as demo:
        gr.Markdown(f"# t2i: captions to flowers\nDescribe a flower; a conditional GAN draws it at {backend.small_size} "
                    "and FSRCNN (or SRCNN) enlarges it.")
        gr.Markdown(backend.describe(), elem_id="loaded-models")
        with gr.Tab("Generate"):
            # Each browser session (and each gradio_client) has its own conversation.
            # (A function, not the class: Gradio would read a dataclass given as a value as an instance.)
            conversation = gr.State(lambda: Conversation(), time_to_live=FILE_LIFETIME)
            chat = gr.Chatbot(label="Images", show_label=False, height=560, elem_id="history")
            with gr.Row():
                caption = gr.Textbox(placeholder="this flower has pink petals and a yellow center",
                                     label="Caption", scale=4, elem_id="caption")
                send = gr.Button("Generate", variant="primary", scale=1, elem_id="generate")
            with gr.Row():
                num_images = Slider(1, MAX_IMAGES_PER_ANSWER, value=2, step=1, label="Images (and variations)", elem_id="num-images")
                seed = Number(value=0, precision=0, minimum=0, label="Seed")
                random_seed = gr.Checkbox(value=False, label="Random seed")
                upscale = Slider(1, 4, value=4, step=1, label="Upscale factor", elem_id="upscale")
                sr_method = Radio(list(SR_METHODS), value="auto", label="SR method", elem_id="sr-method")
            with gr.Row():
                truncation = Slider(0.5, 1, value=1, step=0.05, label="Truncation (1: none; lower: more typical, less varied)")
                rerank = Slider(1, MAX_RERANK, value=1, step=1, label="Rerank: best of K candidates by caption match (1: off)")
            gr.Examples(EXAMPLES, inputs=caption, label="Example captions")
            # Every picture of the conversation, oldest first: a click makes it the current flower. It
            # also shows each image whole: the chat's thumbnails are cropped and have no larger view.
            pictures = gr.Gallery(label="This conversation's pictures: click one to make it the current flower", columns=8,
                                  object_fit="contain", allow_preview=True, height="auto", format="png", elem_id="pictures")
            with gr.Row(equal_height=False):
                current_image = gr.Image(label="Current flower", type="filepath", interactive=False, height=256, width=256,
                                         elem_id="current-image", scale=1)
                with gr.Column(scale=3):
                    current_info = gr.Markdown("No current flower yet: generate one.", elem_id="current-info")
                    current_command = gr.Textbox(label="Draw it again", interactive=False, buttons=["copy"], elem_id="current-command")
                    with gr.Row():
                        keep = gr.Button("Keep this flower, draw the caption above", elem_id="keep")
                        vary = gr.Button("Variations", elem_id="vary")
                        blend = gr.Button("Blend into the caption above", elem_id="blend")
                        enlarge = gr.Button("Upscale this one", elem_id="upscale-this")
                    with gr.Row():
                        strength = Slider(0.05, 1, value=0.3, step=0.05, label="Variation strength", elem_id="strength")
                        blend_steps = Slider(2, MAX_BLEND_STEPS, value=6, step=1, label="Blend steps", elem_id="blend-steps")
            with gr.Row():
                download = gr.Button("Download this conversation (zip)", elem_id="download")
                download_file = gr.File(label="Conversation", interactive=False, elem_id="download-file")
            summary = gr.JSON(visible=False)
            gallery = gr.Gallery(visible=False, format="png")
            pick_number = Number(visible=False, precision=None)

            def current_view(state: Conversation):
                """The current-flower panel: its image, what it is, and its command."""
                if state.current is None:
                    return None, "No current flower yet: generate one.", ""
                flower = state.current_picture()
                image = backend.picture_file(flower, enlarged=flower.big is not None)
                info = (f"**Current flower: #{flower.number}**, {flower.label}. Noise `{flower.noise}`"
                        + (f", truncation {flower.truncation:g}" if flower.truncation != 1 else "") + ".")
                if flower.blend is not None:
                    info += f" The command below writes the whole strip; this picture is `{flower.output()}`."
                if flower.big is not None:
                    info += f"  \nAt {backend.small_size}: `{flower.command(enlarged=False)}`"
                return image, info, flower.command()

            def answer(history, text, state, act, kind, *args, **about):
                """Run one chat action: the request and its answer (words and images) join the history."""
                history = list(history or [])
                if text:
                    history.append({"role": "user", "content": text})
                try:
                    items, info = act(state, *args)
                except gr.Error as exc:  # said in the chat, which keeps its history; the caption stays to edit
                    history.append({"role": "assistant", "content": f"⚠️ {exc.message}"})
                    return history, gr.skip(), state, gr.skip(), *current_view(state)
                made = [state.picture(record["number"]) for record in info["pictures"]]
                if "source" not in about:
                    about["source"] = made[0].number
                history.append({"role": "assistant", "content": _answer(kind, made, state, **about)})
                history.append({"role": "assistant", "content": gr.Gallery(value=items, columns=4, object_fit="contain", format="png")})
                return history, "", state, backend.picture_items(state), *current_view(state)

            outputs = [chat, caption, conversation, pictures, current_image, current_info, current_command]

            def on_generate(text, history, state, n, s, rand, up, method, psi, k):
                return answer(history, text, state, lambda st, *a: backend.generate(*a, conversation=st), "drawn",
                              text, n, s, rand, up, method, psi, k)

            def flower_name(state: Conversation) -> str:
                return f"#{state.current}" if state.current is not None else "the current flower"

            def on_keep(text, history, state, up, method):
                return answer(history, f"Keep {flower_name(state)}: {text}", state, backend.keep, "kept", text, up, method,
                              source=state.current)

            def on_vary(history, state, n, power, s, rand, up, method, k):
                return answer(history, f"Variations of {flower_name(state)}", state, backend.variations, "variation", n, power, s,
                              rand, up, method, k, source=state.current, strength=round(float(power), 2))

            def on_blend(text, history, state, steps, up, method):
                return answer(history, f"Blend {flower_name(state)} into: {text}", state, backend.blend, "blend", text, steps, up,
                              method, source=state.current, target=text)

            def on_enlarge(history, state, up, method):
                return answer(history, f"Upscale {flower_name(state)} ×{int(up)}", state, backend.upscale_this, "upscaled", up,
                              method, source=state.current)

            def on_pick(state: Conversation, event: gr.SelectData):
                # By the number in the clicked picture's caption ("#12: ..."): the gallery the page
                # shows may be older than the session (a conversation gone after FILE_LIFETIME).
                caption = event.value.get("caption") if isinstance(event.value, dict) else None
                number = caption.split(":", 1)[0].lstrip("#") if isinstance(caption, str) else ""
                if not number.isdigit():
                    raise refuse("that picture is no longer in this conversation: generate a new one")
                backend.pick(state, int(number))
                return state, *current_view(state)

            settings = [num_images, seed, random_seed, upscale, sr_method, truncation, rerank]
            for trigger in (send.click, caption.submit):
                trigger(on_generate, [caption, chat, conversation, *settings], outputs, api_name=False)
            keep.click(on_keep, [caption, chat, conversation, upscale, sr_method], outputs, api_name=False)
            vary.click(on_vary, [chat, conversation, num_images, strength, seed, random_seed, upscale, sr_method, rerank], outputs,
                       api_name=False)
            blend.click(on_blend, [caption, chat, conversation, blend_steps, upscale, sr_method], outputs, api_name=False)
            enlarge.click(on_enlarge, [chat, conversation, upscale, sr_method], outputs, api_name=False)
            pictures.select(on_pick, [conversation], [conversation, current_image, current_info, current_command], api_name=False)
            download.click(backend.download, [conversation], download_file, api_name=False)

            # The named endpoints for gradio_client: the same actions on the client's own conversation, plain outputs.
            def api(name, fn, inputs, outs):
                button = gr.Button(visible=False)
                button.click(fn, inputs, outs, api_name=name)

            def api_generate(text, n, s, rand, up, method, psi, k, state):
                return (*backend.generate(text, n, s, rand, up, method, psi, k, conversation=state), state)

            api("generate", api_generate, [caption, *settings, conversation], [gallery, summary, conversation])
            api("pick", lambda state, number: (backend.pick(state, number), state), [conversation, pick_number], [summary, conversation])
            api("keep", lambda state, text, up, method: (*backend.keep(state, text, up, method), state),
                [conversation, caption, upscale, sr_method], [gallery, summary, conversation])
            api("variations", lambda state, n, power, s, rand, up, method, k: (*backend.variations(state, n, power, s, rand, up, method, k), state),
                [conversation, num_images, strength, seed, random_seed, upscale, sr_method, rerank], [gallery, summary, conversation])
            api("blend", lambda state, text, steps, up, method: (*backend.blend(state, text, steps, up, method), state),
                [conversation, caption, blend_steps, upscale, sr_method], [gallery, summary, conversation])
            api("upscale_this", lambda state, up, method: (*backend.upscale_this(state, up, method), state),
                [conversation, upscale, sr_method], [gallery, summary, conversation])
            api("conversation", lambda state: backend.summary(state, state.pictures), [conversation], summary)
            api("download", backend.download, [conversation], download_file)
        with gr.Tab("Interpolate"):
            with gr.Row():
                first = gr.Textbox(value="this flower has red petals", label="From")
                second = gr.Textbox(value="this flower has white petals", label="To")
            with gr.Row():
                steps = Slider(2, 16, value=8, step=1, label="Steps")
                interp_seed = Number(value=0, precision=0, minimum=0, label="Seed")
                interp_random = gr.Checkbox(value=False, label="Random seed")
                go = gr.Button("Interpolate", variant="primary")
            strip = gr.Gallery(label="Caption embedding interpolation (noise held fixed)", columns=8, format="png")
            go.click(backend.interpolate, [first, second, steps, interp_seed, interp_random], strip, api_name="interpolate")
        with gr.Tab("Restyle a photo"):
            gr.Markdown(backend.style_note(), elem_id="style-note")
            with gr.Row():
                # Decoded by the backend (PhotoUpload); the pipeline converts every mode (transparency
                # onto white, as the data files do).
                photo = PhotoUpload(type="filepath", label="Photo", image_mode=None, height=256, elem_id="photo")
                with gr.Column():
                    new_caption = gr.Textbox(value="this flower has yellow petals", label="Caption to draw it with",
                                             elem_id="restyle-caption")
                    photo_caption = gr.Textbox(value="", label="What the photo shows (optional: adds the generator's redrawing of it)",
                                               elem_id="photo-caption")
                    restyle_upscale = Slider(1, 4, value=4, step=1, label="Upscale factor")
                    restyle_method = Radio(list(SR_METHODS), value="auto", label="SR method")
                    restyle_go = gr.Button("Restyle", variant="primary", elem_id="restyle")
            restyled = gr.Gallery(label=f"The photo, its redrawing and the restyled image: {backend.small_size}, then upscaled", columns=3,
                                  object_fit="contain", format="png", elem_id="restyled")
            restyle_summary = gr.JSON(visible=False)
            restyle_go.click(backend.restyle, [photo, new_caption, photo_caption, restyle_upscale, restyle_method],
                             [restyled, restyle_summary], api_name="restyle")
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo
