"""Sphinx configuration of gmm_ppl's documentation site: `make docs` builds it into docs/_build/html.

The pages are MyST markdown; the notebooks (linked into docs/notebooks/ from notebooks/) are
rendered from the outputs committed with them, never executed by the build; the API reference
(api.md) is generated from the docstrings of the names in ``gmm_ppl.__all__``.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # importing for autodoc never looks for an accelerator

import gmm_ppl  # noqa: E402

project = "gmm_ppl"
author = "the gmm_ppl developers"
copyright = "gmm_ppl developers"  # noqa: A001 (Sphinx's name)
version = release = gmm_ppl.__version__

extensions = [
    "myst_nb",  # MyST markdown pages and .ipynb notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style docstrings (Args:, Returns:)
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]

# MyST: $...$ and $$...$$ maths, ::: fences for directives, and ids on headings down to ###, so
# that pages link to each other's sections: [text](selection.md#bic-aic-and-icl).
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks are shown with the outputs committed with them (`make notebooks` re-runs them).
nb_execution_mode = "off"
nb_merge_streams = True

# The API reference: one generated page per public name (docs/generated/, not committed); a
# class's page is its docstring and its own public members (_templates/autosummary/class.rst).
templates_path = ["_templates"]
autosummary_generate = True
autosummary_imported_members = True
# A module page lists what its __all__ names (gmm_ppl.datasets: not the NamedTuple it imports).
autosummary_ignore_module_all = False
# gp.modes and gp.Modes: pages of their own on a file system that ignores case (macOS, Windows).
autosummary_filename_map = {"gmm_ppl.modes": "gmm_ppl.modes-function"}
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # types added to the Args: entries, no second list
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # a NamedTuple's "Attributes:" as fields: its members are documented once

html_theme = "pydata_sphinx_theme"
html_title = "gmm_ppl"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []


def _data_comment(app, what, name, obj, options, lines):
    """A public constant (``gmm_ppl.COVARIANCE_TYPES``) is documented by the ``#:`` comment at
    its assignment in the module that defines it; autodoc looks only in ``gmm_ppl/__init__.py``,
    which loads the name lazily, and would show the docstring of the value's type (dict's)."""
    if what != "data" or not name.startswith("gmm_ppl."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[1]
    for module_name in sorted(m for m in sys.modules if m.startswith("gmm_ppl.")):
        try:
            comment = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
        except Exception:  # noqa: BLE001 (a module without source, say)
            continue
        if comment and getattr(sys.modules[module_name], attr, None) is obj:
            lines[:] = list(comment)
            return


def _skip_tuple_fields(app, what, name, obj, skip, options):
    """A NamedTuple's fields are documented by its docstring's "Attributes:" section; Python's
    own "Alias for field number 0" entries would list them a second time."""
    if what == "class" and (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _data_comment)
    app.connect("autodoc-skip-member", _skip_tuple_fields)
