"""The Gradio demo: through gradio_client in-process, and in a real headless Chromium."""

import os
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


def test_every_answer_is_a_new_file_of_its_own(tiny_run, tmp_path):
    """Identical requests must not share an output file: Gradio writes a returned PIL image in
    place at a path named by its content, so two identical answers raced on one file."""
    from t2i_cli.web import DemoBackend

    backend = DemoBackend(T2IPipeline.from_pretrained(tiny_run, device="cpu"), files=tmp_path)
    first, _ = backend.generate("red petals", 2, 0, False, 2, "bicubic")
    second, _ = backend.generate("red petals", 2, 0, False, 2, "bicubic")
    paths = [path for path, _ in first + second]
    assert all(isinstance(path, str) for path in paths) and len(set(paths)) == 8
    assert Image.open(paths[0]).tobytes() == Image.open(paths[4]).tobytes()  # the same picture, two files


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
        page.locator("#latest img").nth(1).click()
        page.wait_for_function(
            """() => [...document.querySelectorAll('#latest img')].some(
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
