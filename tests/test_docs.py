"""The documentation site (docs/, `make docs`) builds with warnings as errors, and no link
inside it is broken; its API reference lists exactly the public names, ``gmm_ppl.__all__``.

The build runs Sphinx in a process of its own on docs/ as it stands (its pages include files
from elsewhere in the repository: the notebooks through the links in docs/notebooks/, the
benchmarks' tables), writing the site into a temporary folder; what it writes into docs/ is
the API reference's generated pages, docs/generated/, as `make docs` does (ignored by git).
The notebooks are rendered from their committed outputs, never run.
"""

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import gmm_ppl as gp

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def autosummary_names(text):
    """The entries of every ``.. autosummary::`` block of a MyST page, in order."""
    names = []
    for block in re.findall(r"^\.\. autosummary::\n((?:[ \t]+.*\n|\n)*)", text, flags=re.M):
        for line in block.splitlines():
            entry = line.strip()
            if entry and not entry.startswith(":"):  # options (:toctree:, :nosignatures:) aside
                names.append(entry)
    return names


def test_api_page_lists_exactly_the_public_names():
    names = autosummary_names((DOCS / "api.md").read_text())
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
    assert set(names) == set(gp.__all__), {
        "public but not on the page": sorted(set(gp.__all__) - set(names)),
        "on the page but not public": sorted(set(names) - set(gp.__all__)),
    }


def test_autosummary_names_reads_every_block():
    page = ".. autosummary::\n   :toctree: generated\n\n   fit_em\n   EMResult\n\ntext\n\n"
    page += ".. autosummary::\n\n   kmeans\n"
    assert autosummary_names(page) == ["fit_em", "EMResult", "kmeans"]


class _Links(HTMLParser):
    """The relative links (href, src) and the ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            value = attrs.get(key)
            if value is None:
                continue
            parts = urlsplit(value)
            if parts.scheme or parts.netloc:  # http(s), mailto, data: leaves the site
                continue
            self.links.append((unquote(parts.path), unquote(parts.fragment)))


def parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(html_dir):
    """Every relative link of every page whose target file, or id in it, is missing."""
    # _static/ holds the theme's files, templates among them: its links are not the site's.
    pages = {page.resolve(): parse(page) for page in html_dir.rglob("*.html") if "_static" not in page.parts}
    broken = []
    for page, parsed in pages.items():
        for path, anchor in parsed.links:
            target = (page.parent / path).resolve() if path else page
            if path.endswith("/"):
                target = target / "index.html"
            where = f"{page.relative_to(html_dir.resolve())}: {path}#{anchor}"
            if not target.is_file():
                broken.append(f"{where} (no such file)")
            elif anchor and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if anchor not in ids:
                    broken.append(f"{where} (no such id)")
    return broken


def test_broken_links_finds_a_missing_file_and_a_missing_id(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#here">b</a><a href="#top">top</a>')
    (tmp_path / "b.html").write_text('<p id="there"></p><a href="c.html">c</a><a href="https://x.org/c.html">x</a>')
    assert sorted(broken_links(tmp_path)) == ["a.html: b.html#here (no such id)", "b.html: c.html# (no such file)"]


@pytest.mark.slow
def test_site_builds_without_warnings_and_without_broken_links(tmp_path):
    html = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    done = subprocess.run(
        [*command, "-d", str(tmp_path / "doctrees"), str(DOCS), str(html)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-10000:]
    for page in ["index", "api", "notebooks", "architecture", "generated/gmm_ppl.fit_em"]:
        assert (html / f"{page}.html").is_file(), page
    notebooks = sorted(path.stem for path in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and all((html / "notebooks" / f"{name}.html").is_file() for name in notebooks)
    # The API reference documents every public name (autodoc gives each entry its full name as
    # id, a module 'module-' and its name).
    ids = set().union(*(parse(page).ids for page in (html / "generated").glob("*.html")))
    documented = ids | {i.removeprefix("module-") for i in ids}
    assert {f"gmm_ppl.{name}" for name in gp.__all__} - documented == set()
    assert broken_links(html) == []


def github_slug(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readmes_links_lead_somewhere():
    """README.md and CONTRIBUTING.md are read on the code host, outside the site: every relative
    link names a file that exists and, with '#', a heading of that file."""
    assert github_slug("EM's uncertainty: observed information and the bootstrap") == (
        "ems-uncertainty-observed-information-and-the-bootstrap"
    )
    broken = []
    for page in ("README.md", "CONTRIBUTING.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", (ROOT / page).read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = ROOT / path if path else ROOT / page
            if not file.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor:
                headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), flags=re.M)
                if anchor not in {github_slug(h) for h in headings}:
                    broken.append(f"{page}: {target} (no such heading)")
    assert broken == []
