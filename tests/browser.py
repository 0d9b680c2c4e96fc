"""Open a Snakemake 9 report in real headless Chromium (Debian's) and check its figures show.

Reusable from tests and benchmark scripts: `ensure_chromium()` installs Debian's chromium when
missing (root + apt), `check_report(html, screenshot_dir, expected_categories)` clicks through the
report like a reader and returns what it saw.

How the report app works (snakemake/report/html_reporter/template/components): a React page.
The left `<nav>` lists menu items `li > a > span`; with several categories a "Results" heading
(`li` without a link) is followed by one item per category, with one category a single
"Results" item. Clicking a category shows its subcategories as the same kind of items (skipped
when it has only one), clicking one shows a table whose rows end in an "eye" button (an `<a>`
with a click handler; a plain `<a download>` for results the page cannot show). Clicking it sets
`app.state.resultPath` and, for PNG/JPEG/SVG results, puts `<img src=data_uri>` in the content
pane (`#app > div > div.grow`): a data: URI in report.html, a relative `data/raw/...` path in the
report.html of report.zip. Breadcrumb links (`nav nav ol a`) lead back.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: without the background-networking flags Chromium hangs on connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
CONTENT = "#app > div > div.grow"


class BrowserUnavailable(RuntimeError):
    """Chromium is missing and this machine cannot install it (not root, or no apt-get)."""


def ensure_chromium(timeout: float = 900) -> Path:
    """Debian's chromium, installed with apt-get when missing (bounded by `timeout` seconds).

    Raises BrowserUnavailable when it cannot be installed here at all, RuntimeError (loudly,
    with apt's output) when root with apt-get tried and failed.
    """
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrowserUnavailable(
            f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get): "
            "run `apt-get install -y chromium`"
        )
    deadline = time.monotonic() + timeout
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=120"]
    log = []
    for cmd in (
        [apt, *lock, "install", "-y", "chromium"],
        [apt, *lock, "update"],
        [apt, *lock, "install", "-y", "chromium"],
    ):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=left, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            log.append(f"$ {' '.join(cmd)}\n(timed out)")
            break
        log.append(
            f"$ {' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
        if cmd[-1] == "chromium" and proc.returncode == 0 and os.access(CHROMIUM, os.X_OK):
            return CHROMIUM
    raise RuntimeError(
        f"could not install Debian's chromium with apt-get within {timeout:.0f} s:\n"
        + "\n".join(log)
    )


def png_colours(path: Path, box: dict | None = None) -> dict:
    """Decode a PNG (matplotlib) and count its distinct colours: in all, and in a CSS box
    (`box_colours`, when a box is given: a screenshot's pixels are CSS pixels here)."""
    import matplotlib.image

    img = matplotlib.image.imread(path)
    if img.dtype.kind == "f":
        img = np.round(img * 255)
    rgb = img[..., :3].astype(np.uint32)
    h, w = rgb.shape[:2]

    def colours(a: np.ndarray) -> int:
        return int(np.unique((a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]).size)

    out = {"width": w, "height": h, "colours": colours(rgb)}
    if box is not None:
        x0, y0 = max(int(box["x"]), 0), max(int(box["y"]), 0)
        x1, y1 = min(int(box["x"] + box["width"]), w), min(int(box["y"] + box["height"]), h)
        out["box_colours"] = colours(rgb[y0:y1, x0:x1]) if x1 > x0 and y1 > y0 else 0
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _processes_under(root: str) -> list[int]:
    """Pids of processes whose command line names `root` (our own Chromium and its helpers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if root.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def _kill_under(root: str) -> list[int]:
    pids = _processes_under(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return pids


# JavaScript run in the page.
_JS_MENU = """() => {
  const out = [];
  let inResults = false;
  for (const li of document.querySelectorAll('#app > div > nav > div > div > ul > li')) {
    const a = li.querySelector(':scope > a');
    if (!a) { inResults = li.textContent.trim() === 'Results'; continue; }
    const label = a.textContent.trim();
    if (inResults) out.push([label, label]);
    else if (label === 'Results') out.push([Object.keys(categories)[0], label]);
  }
  return out;
}"""
_JS_IMAGES = """() => [...document.images].map(i => ({
  src: (i.getAttribute('src') || '').slice(0, 80), complete: i.complete,
  width: i.naturalWidth, height: i.naturalHeight,
  shown: i.getClientRects().length > 0 }))"""
_JS_LOADED = """() => [...document.images].every(i => i.complete)"""  # broken ones too
_JS_SHOWN = """(prev) => {
  if (typeof app === 'undefined' || !app.state.resultPath || app.state.resultPath === prev) return false;
  const r = results[app.state.resultPath];
  if (!['image/png', 'image/jpeg', 'image/svg+xml'].includes(r.mime_type)) return true;
  const img = document.querySelector('#app > div > div.grow img');
  return !!img && img.getAttribute('src') === r.data_uri;
}"""


def check_report(
    html_path: str | os.PathLike,
    screenshot_dir: str | os.PathLike,
    expected_categories: list[str] | None = None,
    *,
    name: str | None = None,
    max_images_per_category: int | None = None,
    timeout_s: float = 180,
    step_timeout_s: float = 20,
    viewport: tuple[int, int] = (1600, 1000),
) -> dict:
    """Open a Snakemake report in headless Chromium, click through every category and show its
    images; assert that each shown `<img>` decoded, that the page made no request off the
    report's own files, and that full-page screenshots are real pictures.

    Returns {"title", "heading", "description", "categories" (as listed in the navigation),
    "report_categories" (as held in the report's data),
    "images" (one dict per image result shown: category, subcategory, path, width, height),
    "skipped" (results the page does not display inline), "screenshots" (paths),
    "requests" (every URL requested other than data:), "external" (blocked off-disk requests),
    "page_errors", "console_errors", "seconds"}.
    Raises AssertionError when something is missing, undecoded or blank; Playwright's
    TimeoutError when one step (a click, a wait) takes over `step_timeout_s`; TimeoutError when
    the whole check takes over `timeout_s`. Chromium is killed in every case.
    """
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    html = Path(html_path).resolve()
    shots = Path(screenshot_dir)
    shots.mkdir(parents=True, exist_ok=True)
    name = name or _slug(html.stem)
    ms = int(step_timeout_s * 1000)
    out: dict = {
        "categories": [],
        "images": [],
        "skipped": [],
        "screenshots": [],
        "requests": [],
        "external": [],
        "page_errors": [],
        "console_errors": [],
    }
    root = tempfile.mkdtemp(prefix="interface4d-chromium-")
    # A whole-run watchdog: hung Chromium is killed, so every Playwright call then fails.
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        _kill_under(root)

    watchdog = threading.Timer(timeout_s, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(Path(root, "profile")),  # a fresh, empty --user-data-dir
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                timeout=max(ms, 60_000),
                # Crash handler and caches under `root` too, so cleanup finds every process.
                env={
                    **os.environ,
                    "XDG_CONFIG_HOME": str(Path(root, "config")),
                    "XDG_CACHE_HOME": str(Path(root, "cache")),
                },
            )
            try:
                ctx.set_default_timeout(ms)

                def route(r):
                    if r.request.url.startswith(("file:", "data:")):
                        r.continue_()
                    else:
                        out["external"].append(r.request.url)
                        r.abort()

                ctx.route("**/*", route)
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.on(
                    "request",
                    lambda r: None if r.url.startswith("data:") else out["requests"].append(r.url),
                )
                page.on("pageerror", lambda e: out["page_errors"].append(str(e)))
                page.on(
                    "console",
                    lambda m: out["console_errors"].append(m.text) if m.type == "error" else None,
                )
                _walk(page, html, shots, name, out, max_images_per_category, ms)
            finally:
                try:
                    ctx.close()
                except Exception:  # Chromium already gone (the watchdog): cleanup below
                    pass
    except Exception as exc:
        if fired.is_set():
            raise TimeoutError(
                f"checking {html} took over {timeout_s:.0f} s: Chromium was killed"
            ) from exc
        raise
    finally:
        watchdog.cancel()
        _kill_under(root)
        shutil.rmtree(root, ignore_errors=True)
    out["seconds"] = round(time.monotonic() - t0, 2)
    _assert_report(out, expected_categories)
    return out


def _walk(page, html: Path, shots: Path, name: str, out: dict, max_images, ms: int) -> None:
    viewport = dict(page.viewport_size)
    page.goto(html.as_uri(), wait_until="load", timeout=ms)
    page.wait_for_selector("#app nav li > a > span")
    # The navigation animates its width (CSS transitions): off, so clicks need not wait for it.
    page.add_style_tag(content="*, *::before, *::after { transition: none !important; }")
    nav = page.locator("#app > div > nav")
    out["title"] = page.title()
    out["heading"] = nav.locator("h1").inner_text().strip()
    out["description"] = page.locator(f"{CONTENT} .prose").first.inner_text().strip()
    _assert_images_decoded(page, html.name)
    _screenshot(page, shots / f"{name}-00-home.png", out, None)

    out["report_categories"] = page.evaluate("Object.keys(categories)")
    menu = page.evaluate(_JS_MENU)
    out["categories"] = [category for category, _ in menu]
    for category, label in menu:
        n_images = 0
        _home(page, nav)
        _item(nav, label).click()
        page.wait_for_function(
            "c => app.state.category === c && app.state.navbarMode !== 'menu'", arg=category
        )
        if page.evaluate("app.state.navbarMode") == "subcategory":
            subcategories = [None]
        else:
            subcategories = [
                s.strip() for s in nav.locator("div.p-3 > ul > li > a > span").all_inner_texts()
            ]
        for j, sub in enumerate(subcategories):
            if max_images is not None and n_images >= max_images:
                break
            if sub is not None:
                if j > 0:  # back to the subcategory list: the breadcrumb before the last
                    crumbs = nav.locator("nav ol > li > a")
                    crumbs.nth(crumbs.count() - 2).click()
                    page.wait_for_function("() => app.state.navbarMode === 'category'")
                _item(nav, sub).click()
            page.wait_for_function("() => app.state.navbarMode === 'subcategory'")
            subcategory = page.evaluate("app.state.subcategory")
            rows = nav.locator("div.p-3 table tbody tr")
            rows.first.wait_for()
            for i in range(rows.count()):
                if max_images is not None and n_images >= max_images:
                    break
                view = rows.nth(i).locator("td").last.locator("a").first
                if view.get_attribute("download") is not None:
                    out["skipped"].append({"category": category, "row": rows.nth(i).inner_text()})
                    continue
                prev = page.evaluate("app.state.resultPath || null")
                view.click()
                page.wait_for_function(_JS_SHOWN, arg=prev)
                path, mime = page.evaluate(
                    "[app.state.resultPath, results[app.state.resultPath].mime_type]"
                )
                if mime not in IMAGE_TYPES:
                    out["skipped"].append({"category": category, "path": path, "mime": mime})
                    continue
                _assert_images_decoded(page, path)
                img = page.locator(f"{CONTENT} img")
                size = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
                n_images += 1
                shot = shots / (
                    f"{name}-{len(out['images']) + 1:02d}-{_slug(category)}-"
                    f"{_slug(subcategory)}-{_slug(Path(path).name)}.png"
                )
                box = img.bounding_box()
                if box is None or box["width"] < 1 or box["height"] < 1:
                    raise AssertionError(f"{path}: the image is not displayed (box {box})")
                # The content pane centres the figure in a window-high box: a figure taller than
                # the window is cut off (its top cannot even be scrolled to). Record that, and
                # grow the window for the screenshot so it holds the whole figure.
                clipped = box["y"] < 0 or box["y"] + box["height"] > viewport["height"]
                if clipped:
                    tall = min(int(box["height"]) + 100, 8000)
                    page.set_viewport_size({"width": viewport["width"], "height": tall})
                    page.wait_for_function("h => window.innerHeight === h", arg=tall)
                    box = img.bounding_box()
                stats = _screenshot(page, shot, out, box)
                if clipped:
                    page.set_viewport_size(viewport)
                out["images"].append(
                    {
                        "category": category,
                        "subcategory": subcategory,
                        "path": path,
                        "mime": mime,
                        "width": size[0],
                        "height": size[1],
                        "screenshot": str(shot),
                        "figure_colours": stats["figure_colours"],
                        "clipped_in_window": clipped,
                    }
                )
    _home(page, nav)


def _assert_images_decoded(page, what: str) -> None:
    """Every `<img>` on the page finished loading and really decoded (naturalWidth > 0)."""
    page.wait_for_function(_JS_LOADED)
    images = page.evaluate(_JS_IMAGES)
    bad = [im for im in images if not (im["complete"] and im["width"] > 0)]
    if bad:
        raise AssertionError(f"{what}: images not decoded in the browser: {bad}")


def _item(nav, label: str):
    """The navigation menu item (li > a) whose text is exactly `label`."""
    return nav.locator("div.p-3 > ul > li > a").filter(has=nav.page.get_by_text(label, exact=True))


def _home(page, nav) -> None:
    if page.evaluate("app.state.navbarMode") != "menu":
        nav.locator("nav ol > li > a").first.click()  # the home breadcrumb
    page.wait_for_function("() => app.state.navbarMode === 'menu'")


def _screenshot(page, path: Path, out: dict, box: dict | None) -> dict:
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    stats = png_colours(path, box)
    stats["figure_colours"] = stats.pop("box_colours", None)
    out["screenshots"].append(str(path))
    if stats["colours"] <= 16:
        raise AssertionError(f"screenshot {path} looks blank: {stats}")
    if box is not None and stats["figure_colours"] <= 32:
        raise AssertionError(f"the figure in screenshot {path} looks blank: {stats}")
    return stats


def _assert_report(out: dict, expected: list[str] | None) -> None:
    problems = []
    for category in expected or []:
        if category not in out["categories"]:
            problems.append(f"category {category!r} not in the navigation {out['categories']}")
        elif not any(im["category"] == category for im in out["images"]):
            problems.append(f"category {category!r} showed no loaded image")
    if out["page_errors"]:
        problems.append(f"JavaScript errors: {out['page_errors']}")
    if out["external"]:
        problems.append(f"requests off the report's files: {out['external']}")
    if problems:
        raise AssertionError("report check failed:\n" + "\n".join(problems))
