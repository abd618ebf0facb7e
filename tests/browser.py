"""Open a Snakemake report in headless Chromium (Debian's package, driven by Playwright) and
say what a reader would see: the figures and captions it embeds, whether every image decodes,
the errors the page raised, and a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser")


def chromium() -> str:
    """The system's Chromium, or skip the test saying how to get it."""
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no chromium on PATH: `make test` installs Debian's package where it can (root + apt)"
    )


def inspect_report(report: Path, screenshot: Path, categories: list[str]) -> dict:
    """Load the report, open each category in the results menu, decode every embedded image.

    Returns ``results`` (path -> caption text and MIME type of every file the report
    embeds), ``undecoded`` (images the browser could not decode), ``errors`` (console errors
    and uncaught exceptions) and ``menus`` (per category, the page's text once the category
    is opened in the results menu: its subcategories)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("#app div", timeout=30_000)
        results = page.evaluate(
            """() => Object.fromEntries(Object.entries(results).map(([path, r]) => [path, {
                caption: new DOMParser().parseFromString(r.caption, "text/html").body.textContent,
                mime: r.mime_type}]))"""
        )
        undecoded = page.evaluate("""async () => {
                const bad = [];
                for (const [path, r] of Object.entries(results)) {
                    if (!r.mime_type.startsWith("image/")) continue;
                    const image = new Image();
                    image.src = r.data_uri;
                    try { await image.decode(); } catch (e) { bad.push(path); continue; }
                    if (image.naturalWidth < 10) bad.push(path);
                }
                return bad;
            }""")
        menus = {}
        for category in categories:
            page.get_by_text("Results", exact=True).first.click()
            page.get_by_text(category, exact=True).first.click()
            page.wait_for_timeout(200)
            menus[category] = page.inner_text("body")
        # open the last category's first entry and its first figure, as a reader would
        entries = page.locator("#app div.p-3 ul li a")
        if entries.count():
            entries.first.click()
            page.wait_for_timeout(200)
        eyes = page.locator("a[iconname=eye]")
        if eyes.count():
            eyes.first.click()
            page.wait_for_timeout(500)
        shown = page.evaluate(
            "() => [...document.images].filter(i => i.naturalWidth > 10 && i.offsetParent).length"
        )
        page.screenshot(path=str(screenshot))
        browser.close()
    return {
        "results": results,
        "undecoded": undecoded,
        "errors": errors,
        "menus": menus,
        "images_shown": shown,
    }
