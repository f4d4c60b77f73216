"""The Gradio demo: through gradio_client in-process, and in a real headless Chromium."""

import os
import re
import shlex
import shutil
import socket

import pytest
from PIL import Image

gradio = pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")
from gradio_client import Client  # noqa: E402

from conftest import OXFORD_MINI  # noqa: E402
from t2i_cli.pipeline import T2IPipeline  # noqa: E402
from t2i_cli.web import build_demo  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PHOTO = OXFORD_MINI / "jpg" / "image_06734.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def with_style(tiny_run, tmp_path_factory):
    """A copy of the tiny run's checkpoint with an (untrained) style encoder paired to it."""
    import torch

    from t2i_cli.checkpoint import resolve_checkpoint
    from t2i_cli.models.style import StyleConfig, StyleEncoder
    from t2i_cli.style import STYLE_DIR, generator_sha256, write_style_encoder

    checkpoint = tmp_path_factory.mktemp("styled") / "tiny"
    shutil.copytree(resolve_checkpoint(tiny_run), checkpoint)
    torch.manual_seed(0)
    write_style_encoder(checkpoint / STYLE_DIR, StyleEncoder(StyleConfig(width=4)), generator_sha256=generator_sha256(checkpoint), record={})
    return checkpoint


@pytest.fixture(scope="module")
def server(with_style):
    demo = build_demo(T2IPipeline.from_pretrained(with_style, device="cpu"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_api_returns_originals_and_upscaled_images(client):
    items, info = client.predict("pink petals", 3, 11, False, 3, "auto", api_name="/generate")
    assert len(items) == 6 and info["seeds"] == [11, 12, 13]
    sizes = [Image.open(item["image"]).size for item in items]
    assert sizes == [(64, 64), (192, 192)] * 3


def test_same_seed_gives_the_same_pixels(client):
    first, _ = client.predict("white petals", 1, 5, False, 1, "bicubic", api_name="/generate")
    second, _ = client.predict("white petals", 1, 5, False, 1, "bicubic", api_name="/generate")
    other, _ = client.predict("white petals", 1, 6, False, 1, "bicubic", api_name="/generate")
    pixels = [Image.open(x[0]["image"]).tobytes() for x in (first, second, other)]
    assert pixels[0] == pixels[1] != pixels[2]


def test_errors_come_back_as_messages_and_the_server_goes_on(client):
    with pytest.raises(Exception, match="Write a caption first"):
        client.predict("   ", 1, 0, False, 1, "bicubic", api_name="/generate")
    with pytest.raises(Exception, match="greater than maximum value 8"):  # the slider's own check
        client.predict("red", 50, 0, False, 1, "bicubic", api_name="/generate")
    items, _ = client.predict("red", 1, 0, False, 1, "bicubic", api_name="/generate")
    assert len(items) == 1


def test_the_page_names_its_models_without_machine_paths(tiny_run):
    from t2i_cli.web import DemoBackend

    described = DemoBackend(T2IPipeline.from_pretrained(tiny_run, device="cpu")).describe()
    assert "generator tiny" in described and "/" not in described.replace("px", "")


def test_answers_are_whole_files_named_by_content_and_unused_ones_are_swept(tiny_run, tmp_path):
    """An image is written whole, under a name made from its bytes, before Gradio sees it (Gradio
    once rewrote a shared file in place while another request read it): identical answers share
    one finished file, and a file unused for FILE_LIFETIME goes while one in use stays."""
    import os
    import time

    from t2i_cli.web import CLEAN_EVERY, FILE_LIFETIME, DemoBackend

    backend = DemoBackend(T2IPipeline.from_pretrained(tiny_run, device="cpu"), files=tmp_path)
    first, _ = backend.generate("red petals", 2, 0, False, 2, "bicubic")
    second, _ = backend.generate("red petals", 2, 0, False, 2, "bicubic")
    paths = [path for path, _ in first + second]
    assert paths[:4] == paths[4:] and len(set(paths[:4])) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(p) for p in paths[:4])  # no partials left
    stale = time.time() - FILE_LIFETIME - 1
    for path in paths[1:]:
        os.utime(path, (stale, stale))
    backend.swept -= CLEAN_EVERY  # the folder is swept at most every CLEAN_EVERY: as if that had passed
    backend.generate("red petals", 1, 0, False, 2, "bicubic")  # uses paths[0] and paths[1] again
    assert all(os.path.exists(p) for p in paths[:2]) and not any(os.path.exists(p) for p in paths[2:4])


@pytest.mark.slow
def test_seventy_overlapping_requests_get_seventy_whole_images(client):
    """Identical and overlapping requests at once: every download is a whole PNG of the right size
    (Gradio once rewrote a shared cache file in place while another request read it)."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(i):
        items, _ = client.predict("red petals" if i % 4 else "white petals", 2, 0, False, 4, "auto", api_name="/generate")
        sizes = []
        for item in items:
            with Image.open(item["image"]) as image:
                image.load()  # a truncated file fails here
                sizes.append(image.size)
        return sizes

    with ThreadPoolExecutor(max_workers=70) as pool:
        sizes = list(pool.map(ask, range(70)))
    assert sizes == [[(64, 64), (256, 256)] * 2] * 70


def test_interpolate_endpoint(client):
    strip = client.predict("red petals", "white petals", 4, 0, False, api_name="/interpolate")
    assert len(strip) == 4 and Image.open(strip[0]["image"]).size == (64, 64)


def test_restyle_endpoint(client):
    from gradio_client import handle_file

    items, info = client.predict(handle_file(str(PHOTO)), "yellow petals", "a white flower", 2, "auto", api_name="/restyle")
    sizes = [Image.open(item["image"]).size for item in items]
    assert sizes == [(64, 64)] * 3 + [(128, 128)] * 3 and info["photo_caption"] == "a white flower"
    items, _ = client.predict(handle_file(str(PHOTO)), "yellow petals", "", 1, "auto", api_name="/restyle")
    assert len(items) == 2  # no photo caption: the photo and the restyled image
    with pytest.raises(Exception, match="Upload a photo first"):
        client.predict(None, "yellow petals", "", 1, "auto", api_name="/restyle")
    with pytest.raises(Exception, match="Write a caption"):
        client.predict(handle_file(str(PHOTO)), " ", "", 1, "auto", api_name="/restyle")


def test_restyle_tab_says_when_the_generator_has_no_style_encoder(tiny_run):
    from t2i_cli.web import DemoBackend

    backend = DemoBackend(T2IPipeline.from_pretrained(tiny_run, device="cpu"))
    assert "not available" in backend.style_note() and "t2i style train" in backend.style_note()
    with pytest.raises(gradio.Error, match="no style encoder at"):
        backend.restyle(Image.open(PHOTO), "red petals", "", 1, "auto")


def loaded_image_widths(page, container: str, *, at_least: int) -> list[int]:
    """Wait until ``container`` shows ``at_least`` images, each loaded; their natural widths."""
    page.wait_for_function(
        """([selector, count]) => {
            const images = [...document.querySelectorAll(selector + ' img')];
            return images.length >= count && images.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[container, at_least],
        timeout=60000,
    )
    return page.eval_on_selector_all(f"{container} img", "els => els.map(e => e.naturalWidth)")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian package chromium); .ci/run installs it")
def test_a_real_browser_generates_and_renders_images(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page()
        page.goto(server, wait_until="domcontentloaded")
        assert "Loaded:" in page.locator("#loaded-models").inner_text(timeout=30000)
        page.locator("#caption textarea").fill("this flower has pink petals")
        page.locator("#generate").click()
        widths = loaded_image_widths(page, "#history", at_least=4)
        assert 64 in widths and 256 in widths  # originals beside the x4 versions
        assert "this flower has pink petals" in page.locator("#history").inner_text()
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        if os.environ.get("T2I_SCREENSHOT"):
            shutil.copy(tmp_path / "demo.png", os.environ["T2I_SCREENSHOT"])
        assert "/" not in page.locator("#loaded-models").inner_text().replace("px", "")  # no machine paths
        # An image is seen whole: a click opens it at no less than its own size.
        page.locator("#pictures img").nth(1).click()
        page.wait_for_function(
            """() => [...document.querySelectorAll('#pictures img')].some(
                   i => i.naturalWidth === 256 && i.getBoundingClientRect().width >= 256)""",
            timeout=30000,
        )
        # An error is a message in the chat, and what was there stays.
        page.keyboard.press("Escape")
        page.locator("#caption textarea").fill("")
        page.locator("#generate").click()
        page.locator("#history").get_by_text("Write a caption first").first.wait_for(timeout=30000)
        assert "this flower has pink petals" in page.locator("#history").inner_text()
        assert page.eval_on_selector_all("#history img", "els => els.length") >= 4
        # Restyle a photo: upload, caption, and the photo, its redrawing and the restyled image come back.
        page.get_by_role("tab", name="Restyle a photo").click()
        page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
        page.locator("#photo-caption textarea").fill("a white flower")
        page.locator("#restyle").click()
        widths = loaded_image_widths(page, "#restyled", at_least=6)
        assert widths.count(64) == 3 and widths.count(256) == 3
        # A file that is no image: one plain message on the page, nothing of the server's insides.
        not_image = tmp_path / "notimage.jpg"
        not_image.write_text("this is a text file")
        page.locator("#photo input[type=file]").set_input_files(str(not_image))
        page.locator("#restyle").click()
        page.get_by_text("the photo does not decode").first.wait_for(timeout=30000)
        shown = page.locator("body").inner_text()
        for insides in ("/tmp", "ImageData", "UnidentifiedImageError", "Could not preprocess", "Traceback"):
            assert insides not in shown
        browser.close()


@pytest.mark.parametrize("name, content, fragment", [
    ("notimage.jpg", b"this is a text file", "the photo does not decode: not an image format PIL can read"),
    ("empty.png", b"", "the photo does not decode: an empty file"),
    ("truncated.jpg", PHOTO.read_bytes()[:400], "the photo does not decode"),
])
def test_a_bad_photo_is_one_plain_message_without_the_servers_insides(client, tmp_path, caplog, name, content, fragment):
    from gradio_client import handle_file

    path = tmp_path / name
    path.write_bytes(content)
    with caplog.at_level("INFO", logger="t2i_cli.web"), pytest.raises(Exception) as raised:
        client.predict(handle_file(str(path)), "yellow petals", "", 1, "auto", api_name="/restyle")
    message = str(raised.value)
    assert fragment in message and "upload a JPEG, PNG or WebP photo" in message
    for insides in ("/tmp", "gradio", "ImageData", "UnidentifiedImageError", "OSError", "Traceback", name):
        assert insides not in message
    refused = [r for r in caplog.records if r.name == "t2i_cli.web" and "refused a request" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


def test_a_decompression_bomb_photo_is_refused_plainly(client, tmp_path):
    from gradio_client import handle_file

    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 MP in a few kB: over PIL's safe limit
    with pytest.raises(Exception, match="more pixels than are decoded safely") as raised:
        client.predict(handle_file(str(bomb)), "yellow petals", "", 1, "auto", api_name="/restyle")
    assert "/tmp" not in str(raised.value) and "DecompressionBombError" not in str(raised.value)


def test_values_out_of_range_are_refused_in_one_log_line_without_a_traceback(client, caplog, capfd):
    cases = [
        (("red", 50, 0, False, 1, "bicubic"), "Value 50 is greater than maximum value 8"),
        (("red", 1, -5, False, 1, "bicubic"), "Value -5 is less than minimum value 0"),
        (("red", 1, 0, False, 7, "bicubic"), "Value 7 is greater than maximum value 4"),
        (("red", 1, 0, False, 1, "lanczos"), "lanczos"),
    ]
    with caplog.at_level("INFO", logger="t2i_cli.web"):
        for args, fragment in cases:
            with pytest.raises(Exception, match=fragment.replace("(", r"\(")):
                client.predict(*args, api_name="/generate")
    refused = [r for r in caplog.records if r.name == "t2i_cli.web" and "refused a request" in r.getMessage()]
    assert len(refused) == len(cases)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "TextEncodeInput" not in out + err


def test_a_caption_that_is_not_valid_unicode_is_refused_plainly(with_style):
    from t2i_cli.web import DemoBackend

    backend = DemoBackend(T2IPipeline.from_pretrained(with_style, device="cpu"))
    for caption in ("pink \udcff petals", "\x01\x02"):  # a JSON escape of a lone surrogate; control characters only
        with pytest.raises(gradio.Error) as raised:
            backend.generate(caption, 1, 0, False, 1, "bicubic")
        assert raised.value.message.startswith("caption 1 ") and "TextEncodeInput" not in raised.value.message


# --- the chat that remembers ----------------------------------------------------------------------
def test_two_concurrent_clients_keep_their_own_conversations(server):
    """Each gradio_client is a session of its own (its pictures, its current flower), even when
    the two talk to the server at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    def converse(colour: str, seed: int) -> dict:
        client = Client(server, verbose=False)
        for _ in range(3):
            client.predict(f"{colour} petals", 2, seed, False, 1, "bicubic", api_name="/generate")
        assert client.predict(4, api_name="/pick")["current"] == 4
        _, kept = client.predict(f"{colour} and white petals", 1, "bicubic", api_name="/keep")
        assert kept["pictures"][0]["noise"] == str(seed + 1) and kept["current"] == 7
        client.predict(2, 0.3, 9, False, 1, "bicubic", 1, api_name="/variations")
        return client.predict(api_name="/conversation")

    with ThreadPoolExecutor(2) as pool:
        red, white = pool.map(converse, ["red", "white"], [3, 20])
    for history, colour, seed in ((red, "red", 3), (white, "white", 20)):
        assert [p["number"] for p in history["pictures"]] == list(range(1, 10)) and history["current"] == 7
        assert [p["caption"] for p in history["pictures"]] == [f"{colour} petals"] * 6 + [f"{colour} and white petals"] * 3
        assert [p["noise"] for p in history["pictures"][6:]] == [str(seed + 1), f"{seed + 1}~0.3:9", f"{seed + 1}~0.3:10"]
    with pytest.raises(Exception, match=r"there is no picture #2 in this conversation \(it has #1 to #1\)"):
        other = Client(server, verbose=False)
        other.predict("pink petals", 1, 0, False, 1, "bicubic", api_name="/generate")
        other.predict(2, api_name="/pick")


def test_the_api_walks_a_conversation(server, tmp_path):
    import zipfile

    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="pick a flower first"):
        client.predict("yellow petals", 1, "bicubic", api_name="/keep")
    client.predict("red petals", 2, 0, False, 1, "bicubic", api_name="/generate")
    client.predict(2, api_name="/pick")
    client.predict("yellow petals", 2, "bicubic", api_name="/keep")
    items, varied = client.predict(3, 0.25, 40, False, 1, "bicubic", 1, api_name="/variations")
    assert len(items) == 3 and [p["noise"] for p in varied["pictures"]] == ["1~0.25:40", "1~0.25:41", "1~0.25:42"]
    items, blended = client.predict("white petals", 4, 1, "bicubic", api_name="/blend")
    assert len(items) == 4 and all(p["kind"] == "blend" for p in blended["pictures"])
    items, enlarged = client.predict(4, "bicubic", api_name="/upscale_this")
    assert [Image.open(item["image"]).size for item in items] == [(64, 64), (256, 256)] and enlarged["current"] == 11
    archive = zipfile.ZipFile(client.predict(api_name="/download"))
    assert len([n for n in archive.namelist() if n.endswith(".png")]) == 11 + 2  # the kept flower and #11 are enlarged too
    with pytest.raises(Exception, match="Value 0 is less than minimum value 0.05"):  # the slider's own range
        client.predict(1, 0, 0, False, 1, "bicubic", 1, api_name="/variations")


@pytest.fixture(scope="module")
def shipped_pipeline():
    return T2IPipeline.from_pretrained(None, device="cpu")  # the shipped flowers generator


@pytest.fixture(scope="module")
def shipped_server(shipped_pipeline):
    demo = build_demo(shipped_pipeline)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def luminance_correlation(a, b) -> float:
    import numpy as np

    return float(np.corrcoef(np.asarray(a, dtype=float).mean(-1).ravel(), np.asarray(b, dtype=float).mean(-1).ravel())[0, 1])


def border_difference(a, b, width: int = 8) -> float:
    """Mean absolute difference (grey levels) over the outer ``width`` pixels: mostly background."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ring = np.ones(a.shape[:2], bool)
    ring[width:-width, width:-width] = False
    return float(np.abs(a[ring] - b[ring]).mean())


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian package chromium); .ci/run installs it")
def test_a_real_browser_walks_a_conversation_that_remembers(shipped_server, shipped_pipeline, tmp_path):
    """caption -> pick the second -> keep it with a new colour -> variations at two strengths ->
    blend -> upscale -> download; then three pictures taken from the page are drawn again by the
    commands the page shows, byte for byte."""
    import io
    import json
    import subprocess
    import sys
    import zipfile

    import numpy as np

    from t2i_cli.evaluation.colour import dominant_colour

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    pink, yellow = "this flower has pink petals", "this flower has yellow petals"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(shipped_server, wait_until="domcontentloaded")

        def pictures(count: int) -> None:
            loaded_image_widths(page, "#pictures", at_least=count)

        def current(number: int) -> None:
            page.locator("#current-info").get_by_text(f"Current flower: #{number}").wait_for(timeout=60000)

        def set_slider(elem_id: str, value) -> None:
            box = page.locator(f"#{elem_id} input[type=number]")
            box.fill(str(value))
            box.press("Enter")

        def pick(number: int) -> tuple[str, str | None, bytes]:
            """Click picture ``number``; the command the page shows for it, the file that writes
            it if the page names one (a blend's strip), and its image's bytes as served."""
            page.locator("#pictures .thumbnail-item").nth(number - 1).click()
            current(number)
            page.keyboard.press("Escape")
            command = page.locator("#current-command textarea").input_value()
            named = re.search(r"this picture is (\S+?)\.?$", page.locator("#current-info").inner_text().splitlines()[0])
            source = page.locator("#current-image img").get_attribute("src")
            return command, named.group(1) if named else None, page.request.get(source).body()

        page.locator("#caption textarea").fill(pink)
        page.locator("#generate").click()
        pictures(2)
        pick(2)
        page.locator("#caption textarea").fill(yellow)
        page.locator("#keep").click()
        pictures(3)
        current(3)
        assert "drawn with the flower of #2" in page.locator("#history").inner_text()
        for strength, count in ((0.1, 5), (0.6, 7)):
            set_slider("strength", strength)
            page.locator("#vary").click()
            pictures(count)
        page.locator("#caption textarea").fill("this flower has white petals")
        page.locator("#blend").click()
        pictures(13)  # six steps
        set_slider("upscale", 2)
        page.locator("#upscale-this").click()
        pictures(14)
        current(14)
        page.screenshot(path=str(tmp_path / "conversation.png"), full_page=True)
        if os.environ.get("T2I_SCREENSHOT"):
            shutil.copy(tmp_path / "conversation.png", os.environ["T2I_SCREENSHOT"])
        page.locator("#download").click()
        link = page.locator("#download-file a").first
        link.wait_for(timeout=60000)
        with page.expect_download() as download:
            link.click()
        archive = zipfile.ZipFile(download.value.path())
        taken = {number: pick(number) for number in (3, 6, 10)}  # kept, varied, blended
        browser.close()

    record = json.loads(archive.read("conversation.json"))
    assert [p["kind"] for p in record["pictures"]] == ["drawn"] * 2 + ["kept"] + ["variation"] * 4 + ["blend"] * 6 + ["upscaled"]
    small = {p["number"]: Image.open(io.BytesIO(archive.read(f"{p['number']:03d}-64px.png"))).convert("RGB") for p in record["pictures"]}

    # Kept: the same noise with a new colour. On the shipped generator the caption also moves the
    # background's tone, so the bound is relative. Measured over seeds 0-7 for these two captions:
    # the kept flower's light-and-dark layout follows the original's (luminance correlation
    # 0.39-0.64, mean 0.50), where 16 fresh drawings of the new caption do not (mean -0.06 to 0.10,
    # the best 0.15-0.38); its border (mostly background) differs by 35-71 grey levels, theirs by
    # 58-76 on average. So: correlation >= 0.35 and above every fresh drawing's, border below theirs.
    fresh = shipped_pipeline(yellow, num_images=16, seed=1000).images
    kept_corr = luminance_correlation(small[2], small[3])
    assert kept_corr >= 0.35 and kept_corr > max(luminance_correlation(small[2], f) for f in fresh)
    assert border_difference(small[2], small[3]) < np.mean([border_difference(small[2], f) for f in fresh])
    colours = [dominant_colour(np.asarray(small[n]).transpose(2, 0, 1)) for n in (2, 3)]
    assert colours == ["pink", "yellow"], colours
    # Variations of the kept flower (#3): a small, growing change as the strength rises.
    distance = {n: float(np.abs(np.asarray(small[n], dtype=float) - np.asarray(small[3], dtype=float)).mean()) for n in (4, 5, 6, 7)}
    assert 0 < max(distance[4], distance[5]) < min(distance[6], distance[7]), distance
    # The blend starts at the kept flower (drawn in a strip, so within a grey level or so) and ends elsewhere.
    assert np.abs(np.asarray(small[8], dtype=float) - np.asarray(small[3], dtype=float)).mean() < 1
    # The enlargement is the kept flower's 64 px image, not drawn again.
    assert archive.read("014-64px.png") == archive.read("003-64px.png")
    assert Image.open(io.BytesIO(archive.read("014-x2.png"))).size == (128, 128)

    assert taken[10][1] == "blend-10-x4/002.png" and taken[3][1] is None
    for number, (command, named, served) in taken.items():
        args = shlex.split(command)
        assert args[0] == "t2i"
        ran = subprocess.run([sys.executable, "-m", "t2i_cli", *args[1:]], cwd=tmp_path, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        written = tmp_path / (named or args[args.index("--out") + 1])
        assert written.read_bytes() == served, command
