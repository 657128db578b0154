"""Build the course website (Sphinx + MyST-NB) into docs/_build/html, offline, warnings as errors.

    pip install -e ".[docs]"
    python docs/build_site.py            # build; prints the page count and the build time
    python docs/build_site.py --serve    # build, then serve it on http://127.0.0.1:8000 and open a browser

The notebooks are shown with their stored outputs (nothing is executed). Before Sphinx runs,
docs/api.md and docs/config.md are checked against the code, so a new public function or config
key without its documentation fails the build, as does any Sphinx warning (a broken link, a page
missing from the table of contents, a notebook that does not parse).
"""
import argparse
import functools
import http.server
import importlib.util
import sys
import time
import webbrowser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "_build" / "html"
# the modules the build imports, all from the `docs` extra of pyproject.toml (the MathJax extension's
# module is named with hyphens, as docs/conf.py lists it)
DOCS_MODULES = ("sphinx", "myst_nb", "furo", "sphinx-mathjax-offline")


def missing_docs_modules() -> list[str]:
    """The modules of the `docs` extra that are not installed here (empty when the site can build)."""
    return [name for name in DOCS_MODULES if importlib.util.find_spec(name) is None]


def _generator(name: str):
    """docs/build_api.py or docs/build_config.py, imported from its file (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path = OUT, quiet: bool = True, root: Path = ROOT) -> tuple[int, float]:
    """Check the generated pages, run Sphinx with -W on `root` (the repository), and return (HTML pages
    written, seconds). Raises SystemExit, naming the cause, when the build fails."""
    missing = missing_docs_modules()
    if missing:
        raise SystemExit(f"the website needs the docs extra ({', '.join(missing)} not installed): "
                         'pip install -e ".[docs]"')
    for name in ("build_api", "build_config"):
        if _generator(name).main(["--check"]) != 0:
            raise SystemExit(f"docs/{name}.py --check failed: run python docs/{name}.py and rebuild")
    from sphinx.cmd.build import build_main
    start = time.perf_counter()
    args = ["-W", "--keep-going", "-b", "html", "-c", str(root / "docs"), str(root), str(out)]
    status = build_main((["-q"] if quiet else []) + args)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"the site did not build (sphinx exit status {status}); the warnings above say why")
    pages = sum(1 for page in out.rglob("*.html") if "_static" not in page.parts)
    return pages, seconds


def serve(out: Path, port: int) -> None:
    """Serve the built site on localhost and open it in the default browser (Ctrl-C stops)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        url = f"http://127.0.0.1:{port}/docs/index.html"
        print(f"serving {url} (Ctrl-C to stop)")
        webbrowser.open(url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default docs/_build/html)")
    parser.add_argument("--serve", action="store_true", help="serve the site on localhost and open a browser")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    pages, seconds = build(args.out, quiet=not args.verbose)
    print(f"built {pages} pages in {seconds:.0f} s: {args.out / 'docs' / 'index.html'}")
    if args.serve:
        serve(args.out, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
