"""Open the built site in headless Chromium with the network blocked, and say what is wrong with it.

    python site/check.py [out/site] [--screenshots DIR]

Serves the folder from a local HTTP server on a free loopback port, starts Debian's ``chromium``
through its ``chromedriver`` (Selenium) with every host but the loopback mapped to nowhere and a
dead proxy, then visits every page reachable from ``index.html``. A page passes when:

- it and everything it loads come from the local server, with no failed request (the server's log)
  and no error in the browser console;
- every image has loaded (``naturalWidth > 0``);
- every maths element was typeset by MathJax, and no raw ``$...$``, ``\\(`` or ``\\[`` is left in the
  text outside code;
- every link to another page of the site, and every ``#fragment`` on it, resolves.

``tests/test_site.py`` calls :func:`check_site` on a site built in quick mode.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
    # the network is blocked: no name resolves but the loopback's, and any proxied request goes to a dead port
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1;localhost",
]


def chromium_paths() -> tuple[str | None, str | None]:
    """(browser, driver) executables found on PATH, or None each."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


def browser_problem() -> str | None:
    """Why the browser check cannot run here (None when headless Chromium starts)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    browser, driver_path = chromium_paths()
    if not browser or not driver_path:
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    try:
        with chromium() as driver:
            driver.get("about:blank")
    except Exception as e:  # any failure to start is a reason to skip, said as it is
        return f"headless Chromium does not start here: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet; requests are kept in server.requests instead
        pass

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.path, int(code) if str(code).isdigit() else 0))


@contextlib.contextmanager
def serve(folder: Path):
    """An HTTP server for ``folder`` on 127.0.0.1 and a free port; yields (base URL, server)."""
    handler = functools.partial(_Handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium():
    """A Selenium driver for headless Chromium with the network blocked and an empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    if not browser or not driver_path:
        raise RuntimeError("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="deepul-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


_WAIT_MATH = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done('typeset')).catch(e => done('error: ' + e));
} else { done('no mathjax'); }
"""

_INSPECT = """
const skip = 'pre, code, script, style, mjx-container, .highlight, textarea';
const raw = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (node.parentElement && node.parentElement.closest(skip)) continue;
  const m = node.textContent.match(/\\$[^\\s$][^$]*\\$|\\$\\$|\\\\\\(|\\\\\\[/);
  if (m) raw.push(node.textContent.trim().slice(0, 80));
}
const maths = Array.from(document.querySelectorAll('.math'));
return {
  title: document.title,
  images: Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0]),
  pending: Array.from(document.images).filter(i => !i.complete).length,
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  maths: maths.length,
  typeset: maths.filter(e => e.querySelector('mjx-container')).length,
  raw_maths: raw,
  resources: performance.getEntriesByType('resource').map(r => r.name),
};
"""


def _page_problems(driver, url: str, origin: str) -> tuple[list[str], dict]:
    problems = []
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.1)
    math_state = driver.execute_async_script(_WAIT_MATH)
    driver.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager');")
    deadline = time.time() + 15
    info = driver.execute_script(_INSPECT)
    while time.time() < deadline and info["pending"]:  # images still loading (a broken one is complete)
        time.sleep(0.2)
        info = driver.execute_script(_INSPECT)
    page = url[len(origin):] or "index.html"
    problems += [f"{page}: image did not load: {src}" for src, ok in info["images"] if not ok]
    if info["maths"] and info["typeset"] < info["maths"]:
        problems.append(f"{page}: {info['maths'] - info['typeset']} of {info['maths']} maths elements not "
                        f"typeset (MathJax: {math_state})")
    problems += [f"{page}: raw maths left in the text: {s!r}" for s in info["raw_maths"]]
    problems += [f"{page}: requested another host: {r}" for r in info["resources"] if not r.startswith(origin)]
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            problems.append(f"{page}: console: {entry.get('message', '')[:200]}")
    return problems, info


def check_site(folder: str | Path, screenshots: str | Path | None = None, screenshot_pages=None) -> tuple[
        list[str], dict]:
    """Visit every page of the site in ``folder``; returns (problems, summary).

    ``summary``: the pages visited, how many images and maths elements were checked, and the links
    to other hosts (listed, not followed). ``screenshots``: a folder for full-page PNGs of
    ``screenshot_pages`` (default: the home page and the first lecture).
    """
    folder = Path(folder)
    if not (folder / "index.html").exists():
        raise FileNotFoundError(f"no site at {folder}: build it first (make site)")
    problems: list[str] = []
    summary = {"pages": [], "images": 0, "maths": 0, "external_links": set()}
    ids: dict[str, set] = {}
    fragments: list[tuple[str, str, str]] = []  # (from page, to page, fragment)
    with serve(folder) as (origin, server), chromium() as driver:
        todo, seen = [origin + "index.html"], {origin + "index.html"}
        while todo:
            url = todo.pop(0)
            page_problems, info = _page_problems(driver, url, origin)
            problems += page_problems
            page = url[len(origin):]
            summary["pages"].append(page)
            summary["images"] += len(info["images"])
            summary["maths"] += info["maths"]
            ids[page] = set(info["ids"])
            for href in info["links"]:
                target, frag = urldefrag(href)
                if not target.startswith(origin):
                    if urlparse(href).scheme in ("http", "https"):
                        summary["external_links"].add(href)
                    continue
                path = target[len(origin):] or "index.html"
                if path.endswith("/"):
                    path += "index.html"
                if frag:
                    fragments.append((page, path, frag))
                full = origin + path
                if path.endswith(".html") and full not in seen:
                    seen.add(full)
                    todo.append(full)
                elif not path.endswith(".html") and full not in seen:
                    seen.add(full)
                    try:
                        urllib.request.urlopen(full, timeout=10).close()
                    except urllib.error.URLError as e:
                        problems.append(f"{page}: link to {path} does not resolve ({e})")
        if screenshots is not None:
            shots = Path(screenshots)
            shots.mkdir(parents=True, exist_ok=True)
            pages = screenshot_pages or ["index.html"] + [p for p in summary["pages"] if p.startswith("lectures/")][:1]
            for page in pages:
                driver.get(origin + page)
                driver.execute_async_script(_WAIT_MATH)
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1280, min(max(height, 900), 16000))
                time.sleep(0.5)
                driver.save_screenshot(str(shots / (page.replace("/", "_").replace(".html", "") + ".png")))
                driver.set_window_size(1280, 900)
        failed = sorted({(p, c) for p, c in server.requests if c >= 400})
    problems += [f"failed request: {p} (HTTP {c})" for p, c in failed]
    for page, target, frag in fragments:
        if target in ids and frag not in ids[target]:
            problems.append(f"{page}: link to {target}#{frag}: no such anchor")
    summary["external_links"] = sorted(summary["external_links"])
    return problems, summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", nargs="?", default=str(Path(__file__).resolve().parent.parent / "out" / "site"))
    ap.add_argument("--screenshots", default=None, help="folder for PNGs of the home page and the first lecture")
    args = ap.parse_args(argv)
    problems, summary = check_site(args.site, screenshots=args.screenshots)
    print(f"{len(summary['pages'])} pages, {summary['images']} images, {summary['maths']} maths elements checked")
    for link in summary["external_links"]:
        print(f"link to another host (not followed): {link}")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
