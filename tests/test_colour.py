"""Colour faithfulness: the caption parser, the pixel rule and the match rate, each on hand-made inputs."""

import numpy as np
import pytest

from t2i_cli.evaluation.colour import (
    COLOURS,
    colour_match,
    dominant_colour,
    dominant_colours,
    petal_colours,
    second_colour_match,
    second_colours,
)

GREEN = (40, 120, 40)  # foliage
DARK = (15, 15, 20)  # night background


def disc(colour, background, *, size=64, radius=20, centre=None, centre_radius=0):
    """uint8 (3, size, size): a disc of ``colour`` (and optionally a smaller ``centre`` disc) on ``background``."""
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = background
    image[distance <= radius] = colour
    if centre is not None:
        image[distance <= centre_radius] = centre
    return image.transpose(2, 0, 1)


@pytest.mark.parametrize("rgb, name", [
    ((240, 150, 190), "pink"),  # hue 333°
    ((250, 170, 180), "pink"),  # a pale red hue: pink
    ((240, 210, 30), "yellow"),
    ((245, 245, 238), "white"),
    ((200, 20, 30), "red"),
    ((120, 20, 25), "red"),  # maroon: dark but not background-dark
    ((130, 60, 190), "purple"),
    ((240, 130, 20), "orange"),
    ((60, 90, 220), "blue"),
])
@pytest.mark.parametrize("background", [GREEN, DARK])
def test_a_single_colour_disc_is_named_by_its_colour(rgb, name, background):
    assert dominant_colour(disc(rgb, background)) == name


def test_leaves_or_night_alone_have_no_flower_colour():
    assert dominant_colour(disc(GREEN, GREEN)) is None
    assert dominant_colour(disc((30, 160, 60), DARK)) is None  # a green disc is foliage too
    assert dominant_colour(disc(DARK, (90, 90, 90))) is None  # dark on grey: no colour anywhere


def test_white_petals_win_over_a_small_yellow_centre_and_the_batch_agrees_with_single_images():
    daisy = disc((245, 245, 240), GREEN, radius=24, centre=(240, 200, 20), centre_radius=6)
    assert dominant_colour(daisy) == "white"
    batch = np.stack([daisy, disc((200, 20, 30), DARK), disc(GREEN, GREEN)])
    assert dominant_colours(batch) == ["white", "red", None]


def test_a_flower_at_the_edge_counts_less_than_one_in_the_middle():
    image = disc((200, 20, 30), GREEN, radius=12)  # a red centre ...
    yy, xx = np.mgrid[:64, :64]
    image[:, (yy < 64) & (xx < 20)] = np.array((60, 90, 220), dtype=np.uint8)[:, None]  # ... and a wider blue strip at the edge
    assert dominant_colour(image) == "red"


@pytest.mark.parametrize("caption, colours", [
    ("this flower has pink petals and a yellow center", ("pink",)),
    ("the petals of this flower are yellow and it has a dark center", ("yellow",)),
    ("this flower has petals that are white and has a yellow center", ("white",)),
    ("a flower with a yellow center and white petals", ("white",)),  # the centre is named first, but it is no petal
    ("orange petals surround a brown center on this flower", ("orange",)),
    ("cream petals surround a pink center on this flower", ("white",)),
    ("this flower is purple and pink in color, with a shallow open cup shape", ("purple", "pink")),
    ("a flower with violet petals and prominent green stamens", ("purple",)),
    ("a close up of a magenta flower with thin veined bracts", ("pink",)),
    ("this flower has thin veined bracts that are magenta", ("pink",)),
    ("This flower has Light Pink petals", ("pink",)),
    ("the flower shown has five petals, and the petals are bright red", ("red",)),
    ("a pink passion flower with a flat open star shape", ("pink",)),  # the flower's name carries the colour
    ("a pink primrose with purple and pink petals", ("purple", "pink")),  # a petal phrase beats the name
    ("a yellow black-eyed susan with a dark domed center", ("yellow",)),
    ("the passion flower has prominent green stamens", ()),
    ("this flower has five broad rounded petals and a yellow center", ()),
    ("the black-eyed susan has a dark domed center", ()),
    ("a flower with green petals", ()),  # green is foliage to the pixel rule: not scored
    ("", ()),
])
def test_the_parser_finds_the_petal_colour_not_the_centre_colour(caption, colours):
    assert petal_colours(caption) == colours


def test_colour_match_counts_images_whose_caption_names_a_colour():
    dominant = ["pink", "white", None, "red", "yellow"]
    named = [("pink",), ("pink",), ("yellow",), ("pink", "red"), ()]  # the last caption names no colour: skipped
    result = colour_match(dominant, named)
    assert result["captions"] == 4 and result["match"] == pytest.approx(2 / 4)
    per = result["per_colour"]
    assert list(per) == [c for c in COLOURS if c in per]  # a fixed order
    assert per["pink"] == {"captions": 3, "match": pytest.approx(2 / 3)}  # the two-colour caption counts for both
    assert per["red"] == {"captions": 1, "match": 1.0} and per["yellow"] == {"captions": 1, "match": 0.0}
    assert colour_match(["pink"], [()]) == {"captions": 0, "match": None, "per_colour": {}}
    with pytest.raises(ValueError):
        colour_match(["pink"], [])


@pytest.mark.parametrize("caption, wanted", [
    ("this flower has white petals and a yellow center", (("yellow", "centre"),)),
    ("a passion flower with white petals and a dark round center", (("dark", "centre"),)),
    ("this flower has pink and purple petals", (("pink", "petals"), ("purple", "petals"))),
    ("yellow and orange petals around a brown centre", (("dark", "centre"), ("yellow", "petals"), ("orange", "petals"))),
    ("this flower has white petals", ()),
    ("a flower with a ring of filaments around the center", ()),
])
def test_the_second_colour_parser_reads_centre_colours_and_second_petal_colours(caption, wanted):
    assert second_colours(caption) == wanted


WHITE, YELLOW, PURPLE = (245, 245, 240), (240, 200, 20), (130, 60, 190)
LAVENDER = (190, 160, 225)  # white and purple averaged into one


def test_a_second_colour_counts_only_where_it_is_drawn():
    daisy = disc(WHITE, GREEN, radius=24, centre=YELLOW, centre_radius=6)
    plain = disc(WHITE, GREEN, radius=24)
    off_centre = disc(WHITE, GREEN, radius=24)
    off_centre[:, :8, :8] = np.array(YELLOW, dtype=np.uint8)[:, None, None]  # yellow, but in a corner
    two_tone = disc(WHITE, GREEN, radius=24, centre=PURPLE, centre_radius=14)  # a wide purple inner ring
    averaged = disc(LAVENDER, GREEN, radius=24)
    centre = [(("yellow", "centre"),)] * 3
    assert second_colour_match(np.stack([daisy, plain, off_centre]), centre)["match"] == pytest.approx(1 / 3)
    petals = [(("white", "petals"), ("purple", "petals"))] * 2
    result = second_colour_match(np.stack([two_tone, averaged]), petals)
    assert result["match"] == 0.5 and result["per_place"]["petals"] == {"captions": 2, "match": 0.5}
    both = second_colour_match(np.stack([daisy, plain]), [(("yellow", "centre"),), ()])
    assert both["captions"] == 1 and both["per_place"]["centre"]["match"] == 1.0 and both["per_place"]["petals"]["match"] is None


def test_a_dark_or_brown_centre_is_dark():
    for centre in ((20, 15, 10), (110, 60, 30)):  # near-black, brown
        image = disc((240, 210, 30), GREEN, radius=24, centre=centre, centre_radius=7)
        assert second_colour_match(image[None], [(("dark", "centre"),)])["match"] == 1.0
    assert second_colour_match(disc((240, 210, 30), GREEN, radius=24)[None], [(("dark", "centre"),)])["match"] == 0.0
