"""
The attention viewer: its input checks and file in Python, then the saved page in a real headless Chromium.

The browser test drives Debian's chromium through selenium and Debian's chromedriver (both installed by .ci/run;
nothing is downloaded): it loads a saved view from disk, counts the panels, moves the mouse over a cell and reads
the hover text, reads the drawn pixels back from the canvas, switches layer and head, and checks a screenshot.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import numpy as np
import pytest
import torch

from mingpt.interp.attention_view import attention_figure, attention_view

N_LAYER, N_HEAD, T = 2, 3, 10
# Tokens that would break a careless page: a tag that closes the script, quotes, a newline, an ampersand.
TOKENS = ["The", " cat", "</script>", ' "sat"', " on\n", " the", " mat", " &", " <b>", " again"]


def causal_patterns(seed: int = 0) -> torch.Tensor:
    """Random attention probabilities (N_LAYER, N_HEAD, T, T): a softmax over the causal past of each row."""
    generator = torch.Generator().manual_seed(seed)
    scores = 3 * torch.randn(N_LAYER, N_HEAD, T, T, generator=generator)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(dim=-1)


# ------------------------------------------------------------------------------------------- Python side


def test_accepts_the_shapes_people_have():
    patterns = causal_patterns()
    full = attention_view(patterns, TOKENS)
    assert full.patterns.shape == (N_LAYER, N_HEAD, T, T)
    per_layer = attention_view([p[None] for p in patterns], TOKENS)  # probe's trace.attentions: (1, nh, T, T)
    assert np.array_equal(per_layer.patterns, full.patterns)
    one_layer = attention_view(patterns[1].numpy(), TOKENS, layer_names=["layer 1"])
    assert one_layer.patterns.shape == (1, N_HEAD, T, T) and one_layer.layer_names == ["layer 1"]
    assert full.layer_names == ["layer 0", "layer 1"]
    assert full._repr_html_() == full.html  # what Jupyter shows inline


@pytest.mark.parametrize("patterns, tokens, message", [
    (torch.rand(2, 3, 4, 5), TOKENS[:4], "square"),
    (torch.rand(2, 2, 3, 4, 4), TOKENS[:4], "expected (n_layer, n_head, T, T)"),
    ([torch.rand(2, 3, 4, 4)], TOKENS[:4], "pick one sequence"),
    ([torch.rand(3, 4, 4), torch.rand(2, 4, 4)], TOKENS[:4], "same shape"),
    ([], TOKENS[:4], "empty list"),
    (torch.rand(3, 4, 4), TOKENS[:3], "got 3 tokens for patterns over T=4"),
    (torch.rand(3, 4, 4), "abcd", "tokens must be a list"),
    (torch.randn(3, 4, 4) * 5, TOKENS[:4], "must lie in [0, 1]"),
    (torch.full((3, 4, 4), float("nan")), TOKENS[:4], "NaN"),
    ([[0.5]], TOKENS[:1], "torch.Tensor or numpy array"),
])
def test_bad_input_is_named(patterns, tokens, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        attention_view(patterns, tokens)


def test_page_is_self_contained_and_saved_atomically(tmp_path):
    view = attention_view(causal_patterns(), TOKENS, title="two layers")
    page = view.document()
    # Nothing that would make a browser fetch anything: no URL, no src/href attribute, no @import.
    for needle in ("http:", "https:", "//cdn", "src=", "href=", "@import", "url("):
        assert needle not in page, needle
    assert page.count("</script>") == 2  # the data block and the code; the token "</script>" is escaped
    path = tmp_path / "views" / "attention.html"
    assert view.save(path) == str(path)
    assert path.read_text(encoding="utf-8") == page
    assert sorted(os.listdir(path.parent)) == ["attention.html"]  # no temp file left behind
    assert attention_view(causal_patterns(), TOKENS, title="two layers").document() == page  # reproducible


def test_a_large_view_is_logged(monkeypatch, caplog):
    import mingpt.interp.attention_view

    monkeypatch.setattr(mingpt.interp.attention_view, "LARGE_VIEW", N_LAYER * N_HEAD * T * T - 1)
    with caplog.at_level("WARNING", logger="mingpt.interp.attention_view"):
        attention_view(causal_patterns(), TOKENS)
    assert "600 weights (2, 3, 10, 10)" in caplog.text and "fewer layers" in caplog.text
    caplog.clear()
    monkeypatch.setattr(mingpt.interp.attention_view, "LARGE_VIEW", N_LAYER * N_HEAD * T * T)
    attention_view(causal_patterns(), TOKENS)
    assert caplog.text == ""


def test_figure_has_one_panel_per_head(tmp_path):
    import matplotlib  # a test dependency: missing, this test fails instead of vanishing

    matplotlib.use("Agg")
    path = tmp_path / "heads.png"
    fig = attention_figure(causal_patterns(), TOKENS, layer=1, heads=[0, 2], ncols=2, path=path)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert np.allclose(images[1].get_array(), causal_patterns()[1, 2].numpy())  # the right layer and head
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][2] == "</script>"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="heads must be"):
        attention_figure(causal_patterns(), TOKENS, heads=[3])
    with pytest.raises(ValueError, match="layer must be"):
        attention_figure(causal_patterns(), TOKENS, layer=2)
    for ncols in (0, True):  # True is no column count, although Python counts it as the int 1
        with pytest.raises(ValueError, match=rf"ncols must be an int >= 1, got {ncols!r}"):
            attention_figure(causal_patterns(), TOKENS, ncols=ncols)


# ------------------------------------------------------------------------------------------- in a browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by selenium, with a fresh profile and everything that phones home switched off."""
    from selenium import webdriver  # a test dependency (setup.py's test extras)
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and CHROMEDRIVER):
        # CI installs both (.ci/run), so there a missing browser is a failure; a developer's machine may lack them.
        (pytest.fail if os.environ.get("CI") else pytest.skip)("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900", "--force-device-scale-factor=1",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # An explicit driver path: selenium then never runs its manager, which would try to download a driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def cell_center(canvas, i: int, j: int) -> tuple[int, int]:
    """Offset from the canvas centre (selenium's origin for move_to_element_with_offset) of cell (i, j)."""
    left, top, cell = (float(canvas.get_attribute(k)) for k in ("data-left", "data-top", "data-cell"))
    size = canvas.size
    return round(left + (j + 0.5) * cell - size["width"] / 2), round(top + (i + 0.5) * cell - size["height"] / 2)


def test_saved_view_in_a_real_browser(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    patterns = causal_patterns()
    path = attention_view(patterns, TOKENS, title="random causal attention").save(tmp_path / "view.html")
    browser.get(pathlib.Path(path).as_uri())
    root = browser.find_element(By.CSS_SELECTOR, ".mingpt-attn")
    assert root.get_attribute("data-ready") == "1"  # the script ran
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # no requests

    panels = root.find_elements(By.CSS_SELECTOR, ".mgv-panel")
    assert len(panels) == N_HEAD and all(p.is_displayed() for p in panels)

    # Hover a cell of layer 1, head 2: the tooltip names both tokens and the weight.
    Select(root.find_element(By.CSS_SELECTOR, ".mgv-layer")).select_by_visible_text("layer 1")
    i = 2  # destination: the token "</script>", which the page must show, not run
    j = int(patterns[1, 2, i].argmax())  # its strongest cell, a dark one
    canvas = panels[2].find_element(By.TAG_NAME, "canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, *cell_center(canvas, i, j)).perform()
    tip = root.find_element(By.CSS_SELECTOR, ".mgv-tip")
    assert tip.is_displayed()
    text = tip.text
    assert "layer 1, head 2" in text
    assert f"destination: {json.dumps(TOKENS[i])} (position {i})" in text
    assert f"source: {json.dumps(TOKENS[j])} (position {j})" in re.sub(" +", " ", text)
    weight = float(re.search(r"weight: +([\d.]+)", text).group(1))
    assert abs(weight - patterns[1, 2, i, j].item()) < 1e-4, (text, patterns[1, 2, i, j])

    # The pixels drawn in that cell have the colour of its weight (white -> dark blue), as does a masked cell.
    def pixel(row, col):
        left, cell = float(canvas.get_attribute("data-left")), float(canvas.get_attribute("data-cell"))
        x, y = int(left + (col + 0.3) * cell), int(left + (row + 0.3) * cell)  # off-centre: clear of the outline
        return browser.execute_script(
            "return Array.from(arguments[0].getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data)",
            canvas, x, y)[:3]

    expected = 255 - np.array([247, 207, 148]) * patterns[1, 2, i, j].item()
    assert np.abs(np.array(pixel(i, j)) - expected).max() <= 2
    assert pixel(1, 5) == [255, 255, 255]  # above the diagonal: the future, weight 0

    # The screenshot is not blank: a good share of the panels' area is the heatmaps' blues, in many shades.
    shot = tmp_path / "view.png"
    assert browser.save_screenshot(str(shot))
    from matplotlib.image import imread

    box = root.find_element(By.CSS_SELECTOR, ".mgv-panels").rect  # CSS pixels = screen pixels at scale 1
    image = (imread(shot)[..., :3] * 255).astype(int)
    image = image[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]
    blue = (image[..., 2] - image[..., 0] > 40).mean()
    assert blue > 0.01, f"only {blue:.2%} of the screenshot is blue: the heatmaps were not drawn"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    if os.environ.get("MINGPT_KEEP_SCREENSHOT"):  # to look at it: MINGPT_KEEP_SCREENSHOT=/tmp/view.png
        shutil.copy(shot, os.environ["MINGPT_KEEP_SCREENSHOT"])

    # Choosing one head leaves one panel on screen.
    Select(root.find_element(By.CSS_SELECTOR, ".mgv-head")).select_by_value("1")
    assert [p.is_displayed() for p in panels] == [False, True, False]


def test_two_views_on_one_page(browser, tmp_path):
    """As in a notebook showing several views: each fragment's script sets up its own view, without global ids."""
    from selenium.webdriver.common.by import By

    first = attention_view(causal_patterns(), TOKENS, title="first")
    second = attention_view(causal_patterns(seed=1)[:, :2, :4, :4], TOKENS[:4], title="second")
    page = tmp_path / "two.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>text between</p>"
                    f"{first.html}<p>more text</p>{second.html}{first.html}</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    roots = browser.find_elements(By.CSS_SELECTOR, ".mingpt-attn")
    assert [r.get_attribute("data-ready") for r in roots] == ["1", "1", "1"]
    assert [len(r.find_elements(By.CSS_SELECTOR, ".mgv-panel")) for r in roots] == [N_HEAD, 2, N_HEAD]
    assert [r.find_element(By.CSS_SELECTOR, ".mgv-title").text for r in roots] == ["first", "second", "first"]


def test_a_long_sequence_fills_the_page_readably(browser, tmp_path):
    """T=128 at a 1200-px window: cells sized to the width (not 240 px a grid), every token labelled with its
    leading space visible, and the token-text view colours the text by the chosen head's attention."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    T_long = 128
    generator = torch.Generator().manual_seed(3)
    scores = 3 * torch.randn(2, 3, T_long, T_long, generator=generator)
    scores[:, 1] += 12 * torch.eye(T_long).roll(-1, 1)  # head 1: a previous-token head
    patterns = scores.masked_fill(torch.ones(T_long, T_long, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    words = ["The", " cat", " sat", " on", " the", " mat", ".", "\n", " It", " purred"]
    tokens = [words[i % len(words)] for i in range(T_long)]
    path = attention_view(patterns, tokens, title="T=128").save(tmp_path / "long.html")
    browser.get(pathlib.Path(path).as_uri())
    root = browser.find_element(By.CSS_SELECTOR, ".mingpt-attn")
    page_width = root.find_element(By.CSS_SELECTOR, ".mgv-panels").size["width"]
    canvases = root.find_elements(By.CSS_SELECTOR, "canvas")
    cells = [float(c.get_attribute("data-cell")) for c in canvases]
    # The overview: cells of at least 6 px (the old viewer: 240 px / 128 -> its 3-px minimum), each grid within
    # the page and together using most of its width; a label on every row.
    assert min(cells) >= 6 and all(c.size["width"] <= page_width for c in canvases)
    assert canvases[0].size["width"] > 0.6 * page_width
    assert [c.get_attribute("data-label-every") for c in canvases] == ["1"] * 3
    # Leading spaces are visible in the labels (a middle dot), and a newline is shown as \n.
    label = canvases[0].get_attribute("aria-label")
    assert "tokens: The ·cat ·sat ·on ·the ·mat . \\n ·It ·purred The" in label
    # One head: the whole width.
    Select(root.find_element(By.CSS_SELECTOR, ".mgv-head")).select_by_value("2")
    assert float(canvases[2].get_attribute("data-cell")) >= 8 and [c.is_displayed() for c in canvases] == [
        False, False, True]

    # The token view: the text, one span per token, coloured by head 1's attention from the chosen token.
    spans = root.find_elements(By.CSS_SELECTOR, ".mgv-text .mgv-tok")
    assert [s.get_attribute("textContent") for s in spans] == [t.replace("\n", "\\n") for t in tokens]
    Select(root.find_element(By.CSS_SELECTOR, ".mgv-text-head")).select_by_value("1")
    spans[40].click()
    text = root.find_element(By.CSS_SELECTOR, ".mgv-text")
    assert text.get_attribute("data-dest") == "40" and text.get_attribute("data-head") == "1"

    def background(span):
        return [int(v) for v in re.findall(r"\d+", span.value_of_css_property("background-color"))[:3]]

    for j in (0, 38, 39, 40):
        expected = 255 - np.array([247, 207, 148]) * patterns[0, 1, 40, j].item()
        assert np.abs(np.array(background(spans[j])) - expected).max() <= 1, j
    assert patterns[0, 1, 40, 39] > 0.9 and background(spans[39])[0] < 40  # the previous token: dark
    assert background(spans[41]) == [255, 255, 255] and "mgv-later" in spans[41].get_attribute("class")
    shot = tmp_path / "long.png"
    assert browser.save_screenshot(str(shot))
    if os.environ.get("MINGPT_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["MINGPT_KEEP_SCREENSHOT"].replace(".png", "-long.png"))
