"""The course website: it builds offline with warnings as errors, and a real browser shows it.

A headless Chromium (Debian's package, driven by Playwright) opens every page of the built site
and fails on any console error, failed request or HTTP error; it checks that the math was typeset
and that the notebook pages show their plots. It then opens notebook 05 in a running JupyterLab,
runs it, and moves the denoising viewer's slider, which must change the step shown.

Screenshots and the timings go to docs/_build/check/ (git-ignored), or $DLLM_SITE_ARTEFACTS.
Outside CI these tests skip when the docs extra (`pip install -e ".[docs]"`) or Chromium is
missing; under CI (CI=true, as .ci/run sets) they fail instead, so the check cannot silently vanish.
"""
import functools
import http.server
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = Path(os.environ.get("DLLM_SITE_ARTEFACTS", ROOT / "docs" / "_build" / "check"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str):
    """Skip outside CI, fail inside it: the site check must run in CI."""
    if IN_CI:
        pytest.fail(f"{what} is missing; CI must install it (see .ci/run)")
    pytest.skip(f"{what} is missing")


def _chromium() -> str:
    found = os.environ.get("DLLM_CHROMIUM") or next(
        (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
    if not found:
        _missing("Chromium (apt-get install chromium)")
    return found


def _load_build_site():
    """docs/build_site.py as a module (docs/ is not a package; it imports Sphinx only when building)."""
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "docs" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_site = _load_build_site()


def _record(**facts):
    """Add timings and counts to docs/_build/check/summary.json."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary.update(facts)
    path.write_text(json.dumps(summary, indent=1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site: (folder, number of HTML pages)."""
    for module in ("sphinx", "myst_nb", "furo"):
        if importlib.util.find_spec(module) is None:
            _missing(f"the docs extra ({module}; pip install -e \".[docs]\")")
    out = tmp_path_factory.mktemp("site")
    pages, seconds = build_site.build(out)
    _record(site_pages=pages, site_build_s=round(seconds, 1))
    return out, pages


@pytest.fixture(scope="module")
def browser():
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright (pip install -e \".[docs]\")")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(site):
    """The built site on a local HTTP server: its base URL."""
    out, _ = site

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _sources() -> list[str]:
    """The pages the site must have, one per source file."""
    names = [f"docs/{p.relative_to(ROOT / 'docs').with_suffix('')}" for p in (ROOT / "docs").rglob("*.md")
             if "_build" not in p.parts]
    names += [f"{folder}/{p.stem}" for folder in ("notebooks", "exercises") for p in (ROOT / folder).glob("*.ipynb")]
    return sorted(names)


def test_site_has_a_page_for_every_source(site):
    out, pages = site
    missing = [name for name in _sources() if not (out / f"{name}.html").exists()]
    assert not missing, f"no page built for {missing}"
    assert pages >= len(_sources())
    assert (out / "index.html").exists(), "the site's root index.html (docs/_extra) is missing"


@pytest.mark.parametrize("breakage", ["nothing", "a link to a page that does not exist", "a page in no table of contents"])
def test_the_build_fails_on_a_broken_link_or_a_stray_page(site, tmp_path, breakage):
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("_build"))
    for folder, pattern in (("notebooks", "*.ipynb"), ("exercises", "*.ipynb"), ("dllm_lite", "*.py")):
        (root / folder).mkdir()
        for path in (ROOT / folder).glob(pattern):  # the API page links to the package's sources
            shutil.copy(path, root / folder)
    if breakage == "nothing":
        assert build_site.build(tmp_path / "out", root=root)[0] == site[1]
        return
    if breakage.startswith("a link"):
        with open(root / "docs" / "glossary.md", "a") as glossary:
            glossary.write("\nSee also [a page that was never written](no_such_page.md).\n")
    else:
        (root / "docs" / "stray.md").write_text("# A page nobody links to\n")
    with pytest.raises(SystemExit, match="did not build"):
        build_site.build(tmp_path / "out", root=root)


def test_config_reference_lists_every_key(site):
    from dataclasses import fields, is_dataclass
    from dllm_lite.config import Config
    html = (site[0] / "docs" / "config.html").read_text()
    keys = [f.name for f in fields(Config) if not is_dataclass(f.default_factory)]
    keys += [f"{s.name}.{f.name}" for s in fields(Config) if is_dataclass(s.default_factory)
             for f in fields(s.default_factory)]
    assert keys and all(key in html for key in keys), [key for key in keys if key not in html]


def _open(page, url: str) -> list[str]:
    """Load `url`, wait for the math to be typeset, and return every problem the browser reported."""
    problems = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 else None)
    page.goto(url, wait_until="networkidle")
    if page.evaluate("!!(window.MathJax && MathJax.startup)"):
        page.evaluate("MathJax.startup.promise")
    return problems


def test_every_page_loads_without_errors_and_shows_its_math_and_plots(site, served, browser):
    out, _ = site
    start = time.perf_counter()
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html") if "_static" not in p.parts)
    failures, math_pages, plot_pages = [], 0, 0
    shots = {"docs/index.html", "docs/concepts.html", "notebooks/05_sampling.html", "docs/config.html"}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name in pages:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = _open(page, f"{served}/{name}")
        source = (out / name).read_text()
        if "mathjax" in source and ('class="math' in source):
            rendered = page.locator("mjx-container").count()
            errors = page.locator("mjx-merror").count()
            math_pages += rendered > 0
            if rendered == 0 or errors:
                problems.append(f"math not rendered ({rendered} formulas, {errors} errors)")
        if name.startswith("notebooks/") and "<img" in source:
            shown = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
            total = page.evaluate("document.images.length")
            plot_pages += shown > 0
            if shown < total:
                problems.append(f"{total - shown} of {total} images did not load")
        if name in shots:
            page.screenshot(path=str(ARTEFACTS / (name.replace("/", "_").replace(".html", ".png"))), full_page=False)
        page.close()
        failures += [f"{name}: {problem}" for problem in problems]
    seconds = time.perf_counter() - start
    _record(browser_pages=len(pages), browser_check_s=round(seconds, 1), math_pages=math_pages, plot_pages=plot_pages)
    assert not failures, "\n".join(failures)
    notebooks_with_plots = sum(1 for p in (ROOT / "notebooks").glob("*.ipynb") if '"image/png"' in p.read_text())
    assert plot_pages == notebooks_with_plots, f"{plot_pages} notebook pages show plots, {notebooks_with_plots} have them"
    assert math_pages >= 10, f"only {math_pages} pages with typeset math"


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on localhost over a copy of notebook 05 (the stored notebook is never touched)."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "05_sampling.ipynb", tmp_path / "notebooks")
    port = _free_port()
    env = dict(os.environ, DLLM_SMOKE="1", JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=None"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start; see {tmp_path / 'jupyterlab.log'}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _accept_kernel_dialog(page, seconds: float = 10):
    """JupyterLab may ask which kernel to start: take the one it proposes (the notebook's own)."""
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    deadline = time.time() + seconds
    while time.time() < deadline:
        if accept.count() and accept.first.is_visible():
            accept.first.click()
            return
        time.sleep(0.5)


def test_denoising_viewer_slider_changes_the_step_in_jupyterlab(jupyterlab, browser):
    if importlib.util.find_spec("jupyterlab") is None:
        _missing("jupyterlab (pip install -e \".[dev]\")")
    start = time.perf_counter()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{jupyterlab}/lab/tree/notebooks/05_sampling.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    _accept_kernel_dialog(page)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    _accept_kernel_dialog(page)
    slider = page.locator(".widget-slider").first
    try:
        slider.wait_for(timeout=600_000)
    except Exception:
        page.screenshot(path=str(ARTEFACTS / "jupyterlab_05_failed.png"))
        raise
    # the slider's callback runs in the kernel: wait until every cell has run and the kernel is free
    page.wait_for_function("document.querySelectorAll('.jp-InputArea-prompt').length > 0 && "
                           "![...document.querySelectorAll('.jp-InputArea-prompt')].some(p => p.innerText.includes('*'))",
                           timeout=600_000)
    view = page.locator(".widget-vbox .widget-html").first
    slider.scroll_into_view_if_needed()
    page.wait_for_function("el => el.innerText.includes('step 0 of')", arg=view.element_handle(), timeout=30_000)
    before = view.inner_text()
    page.locator(".widget-slider .noUi-handle").first.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("el => el.innerText.includes('step 5 of')", arg=view.element_handle(), timeout=60_000)
    after = view.inner_text()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "jupyterlab_05_viewer.png"))
    _record(jupyterlab_check_s=round(time.perf_counter() - start, 1))
    assert before.startswith("step 0 of") and after.startswith("step 5 of") and before != after
    assert page.locator(".widget-slider .widget-readout").first.inner_text().strip() == "5"
