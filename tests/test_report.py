"""The Snakemake report of the tiny campaign, built for real and opened in headless Chromium.

`snakemake --report results/report.html` and `--report results/report.zip` both build; each
report, opened from disk in Debian's chromium, lists every expected category in its navigation,
and every image result clicked open there really decodes (`complete && naturalWidth > 0`) and
shows in a full-page screenshot that is a real picture. Screenshots land in the test's tmp dir
and in results/screenshots/ of the campaign copy. The browser part takes seconds; building the
tiny campaign about a minute.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest

from .browser import BrowserUnavailable, check_report, ensure_chromium, png_colours
from .helpers import snakemake

pytestmark = pytest.mark.slow

# Every report category that must be listed and show at least one loaded image (extend here).
EXPECTED_CATEGORIES = [
    "0. Headline numbers",
    "1. Structures",
    "2. Forward model",
    "3. Classification",
    "4. Step position",
    "5. Transferability",
    "6. Dose study",
]


@pytest.fixture(scope="module")
def campaign(tiny_campaign) -> Path:
    """The tiny campaign (session fixture, run to completion) with both reports built there."""
    wd = tiny_campaign
    snakemake(wd, "--configfile", "tiny.yaml", "--report", "results/report.html", timeout=300)
    snakemake(wd, "--configfile", "tiny.yaml", "--report", "results/report.zip", timeout=300)
    return wd


@pytest.fixture(scope="module")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))


def test_html_report_is_self_contained(campaign):
    html = (campaign / "results/report.html").read_text()
    assert "interface4d campaign" in html
    # No external scripts or stylesheets, and every figure embedded as a data: URI (the browser
    # tests below check that the page requests nothing but itself).
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert tags and not [t for t in tags if re.search(r"\b(?:src|href)\s*=", t)]
    assert not re.findall(r'"data_uri": "(?!data:)', html)
    for category in EXPECTED_CATEGORIES:
        assert f'"{category}"' in html
    assert html.count('"data_uri": "data:image/png;') >= len(EXPECTED_CATEGORIES)


def test_zip_report_holds_report_html_and_figures(campaign):
    with zipfile.ZipFile(campaign / "results/report.zip") as zf:
        names = zf.namelist()
        assert "report/report.html" in names
        html = zf.read("report/report.html").decode()
    data = re.findall(r'"data_uri": "(data/raw/[^"]+)"', html)
    assert data and all(f"report/{d}" in names for d in data)
    assert {Path(d).name for d in data} >= {"structures.png", "t40.png", "t60.png"}


def _check(html: Path, shots: Path, campaign: Path, name: str) -> dict:
    out = check_report(html, shots, EXPECTED_CATEGORIES, name=name)
    keep = campaign / "results/screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    for shot in out["screenshots"]:
        shutil.copy2(shot, keep)

    assert out["title"] == "Snakemake Report"
    assert out["heading"].split() == ["Snakemake", "Report"]
    # The campaign description (workflow/report/workflow.rst), rendered with the config.
    assert out["description"].startswith("interface4d campaign tiny: simulated 4D-STEM")
    assert "Oxley et al. 2020" in out["description"]
    # the headline numbers on the top page, each with its interval and the baseline's
    assert "linear baseline" in out["description"] and "95 % Wilson" in out["description"]
    assert "ridge baseline" in out["description"]

    # The navigation lists every category the report holds, the expected ones among them.
    assert sorted(out["categories"]) == sorted(out["report_categories"])
    for category in EXPECTED_CATEGORIES:
        assert category in out["categories"]
        shown = [im for im in out["images"] if im["category"] == category]
        assert shown, f"no image shown for {category}"
        for im in shown:
            assert im["width"] > 100 and im["height"] > 100, im
            assert im["figure_colours"] > 32, im
    paths = {im["path"] for im in out["images"]}
    assert {
        "results/figures/structures.png",
        "results/figures/scan/t40.png",
        "results/figures/scan/t60.png",
    } <= paths

    assert out["page_errors"] == [] and out["console_errors"] == [] and out["external"] == []
    assert len(out["screenshots"]) == len(out["images"]) + 1  # the landing page too
    for shot in out["screenshots"]:
        stats = png_colours(Path(shot))
        assert stats["width"] >= 800 and stats["height"] >= 600 and stats["colours"] > 16, stats
        assert (keep / Path(shot).name).is_file()
    return out


def test_html_report_shows_figures_in_chromium(campaign, chromium, tmp_path):
    html = campaign / "results/report.html"
    out = _check(html, tmp_path / "screenshots", campaign, "html")
    # Self-contained: the page loaded nothing but itself.
    assert out["requests"] == [html.resolve().as_uri()]


def test_zip_report_shows_figures_in_chromium(campaign, chromium, tmp_path):
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(campaign / "results/report.zip") as zf:
        zf.extractall(unzipped)
    html = unzipped / "report/report.html"
    out = _check(html, tmp_path / "screenshots", campaign, "zip")
    # The figures come from the zip's own data/ files, and nothing from elsewhere.
    base = (unzipped / "report").resolve().as_uri() + "/"
    assert all(url.startswith(base) for url in out["requests"]), out["requests"]
    assert sum("/data/raw/" in url for url in out["requests"]) >= len(out["images"])
