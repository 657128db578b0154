"""Sphinx configuration of the course website: `python docs/build_site.py` builds it.

Sphinx with MyST-NB, the tool the scientific Python projects use for sites that mix prose,
math and executed notebooks. The source folder is the repository root, limited by
`include_patterns` to docs/, notebooks/ and exercises/, so the notebooks' links to
`../docs/glossary.md` and the documents' links to `../notebooks/05_sampling.ipynb` resolve on
the site exactly as they do on disk. Notebooks are rendered from their stored outputs and never
executed here; the math is typeset by a bundled copy of MathJax, so the site works offline.
"""
import dllm_lite

project = "dllm_lite"
author = "the dllm_lite authors"
copyright = "2026, the dllm_lite authors"
release = dllm_lite.__version__

root_doc = "docs/index"
include_patterns = ["docs/*.md", "docs/guides/*.md", "notebooks/*.ipynb", "exercises/*.ipynb"]
exclude_patterns = ["docs/_build/**", "**/.ipynb_checkpoints/**"]

extensions = ["myst_nb", "sphinx-mathjax-offline"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 4          # "#dllm_litesample"-style links between and within pages
myst_dmath_double_inline = True   # "$$ ... $$" written inside a paragraph

nb_execution_mode = "off"         # show the stored outputs; the tests run the notebooks
nb_merge_streams = True
# Widgets (the progress bars, the denoising viewer) need a running kernel: the site shows
# their text form instead of loading the widget manager from a CDN.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None),
                              ("html", "application/vnd.jupyter.widget-state+json", None)]

html_theme = "furo"
html_title = "dllm_lite"
html_extra_path = ["_extra"]      # index.html at the site's root, pointing to docs/index.html
html_permalinks_icon = "#"
html_favicon = "favicon.svg"
nb_ipywidgets_js = {}             # and so needs neither require.js nor the widget manager


def setup(app):
    # MathJax on every page, not only on pages with math in their body: the sidebar's titles
    # (notebook 02's weight) hold math on every page.
    app.set_html_assets_policy("always")
