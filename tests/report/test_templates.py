"""The HTML templates (spurlab/templates, rendered by spurlab.io.render): every template and
static file is used by a page, and values are escaped once, as html.escape does."""

import shutil

import numpy as np
import pytest

from spurlab.discover.annotate import AnnotationTask, export_tasks
from spurlab.io import render
from spurlab.measure.explanation_study import GROUPS, assign, questionnaire_html
from tests.report.conftest import build, write_components, write_subsets

NAME = "<b>&"
ESCAPED = "&lt;b&gt;&amp;"


def task(name: str = NAME, attacks: bool = True) -> AnnotationTask:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    return AnnotationTask(3, name, 7, 1, images, rng.random((2, 8, 8)), images if attacks else None, "n01<2>")


def study_pages(tmp_path) -> list[str]:
    from PIL import Image

    assignment = assign(1, ["smoothgrad", "control"], 0)
    stimuli = {}
    for s in sorted(assignment.stimulus.unique()):
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / s)
        stimuli[s] = tmp_path / s
    return [questionnaire_html(g, assignment, stimuli, "a tag added to images of class 'disk'") for g in GROUPS]


@pytest.fixture
def loads(monkeypatch):
    """The names the template loader is asked for while the test runs (a fresh environment)."""
    render.environment.cache_clear()
    loader = render.environment().loader
    names, get_source = set(), loader.get_source

    def spy(environment, name):
        names.add(name)
        return get_source(environment, name)

    monkeypatch.setattr(loader, "get_source", spy)
    yield names
    render.environment.cache_clear()


def test_every_template_file_is_used_by_a_page(small_site, tmp_path, loads):
    build(small_site["dir"], tmp_path / "site")
    export_tasks(tmp_path / "tasks", [task()])
    study_pages(tmp_path)
    files = {p.relative_to(render.TEMPLATES).as_posix() for p in render.TEMPLATES.rglob("*") if p.is_file()}
    assert files and files == loads, f"unused: {sorted(files - loads)}"


def test_values_are_escaped_once_like_html_escape():
    t = render.environment().from_string("{{ x }}|{{ y|safe }}")
    assert t.render(x="<b>&\"'", y="<i>") == "&lt;b&gt;&amp;&quot;&#x27;|<i>"
    assert render.environment().from_string("{{ x|json }}").render(x=["</script>"]) == '["<\\/script>"]'


def test_task_pages_escape_class_names(tmp_path):
    export_tasks(tmp_path, [task()], class_descriptions={3: "<i>x</i> & y"})
    page = (tmp_path / task().page).read_text()
    assert f"<title>{ESCAPED}: feature 7</title>" in page and f"&ldquo;{ESCAPED}&rdquo;" in page
    assert 'data-wnid="n01&lt;2&gt;"' in page and "&lt;i&gt;x&lt;/i&gt; &amp; y" in page
    assert NAME not in page and "&amp;lt;" not in page  # escaped, and once
    assert "Focus is on the <b>background</b> of the main object." in page  # the form's markup stays markup
    index = (tmp_path / "index.html").read_text()
    assert f"<h2>3: {ESCAPED}</h2>" in index and NAME not in index


def test_site_pages_escape_class_names(small_site, tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    shutil.copy(small_site["dir"] / "test.h5", d / "test.h5")
    names = [NAME] + [f"{n} & co" for n in small_site["classes"][1:]]
    from spurlab.data.imagesets import ImageSet

    with ImageSet(d / "test.h5") as s:
        write_subsets(d, names, s.labels[:], s.image_size)
        write_components(d, names, len(s.labels), s.image_size)
    build(d, tmp_path / "site")
    page = (tmp_path / "site" / "pages" / "feature_c1_f7.html").read_text()
    assert f"<title>{names[1].replace('&', '&amp;')} (1), feature 7</title>" in page
    assert f'<a href="feature_c0_f7.html">{ESCAPED} (0)</a>' in page  # shares feature 7 with class 0
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert NAME not in text.split("var PAGES = ")[0] and "&amp;lt;" not in text, page.name
    index = (tmp_path / "site" / "index.html").read_text()
    assert '"class_name": "<b>&"' in index  # JSON for the search script, not HTML


def test_study_pages_keep_their_markup(tmp_path):
    blinded, told = study_pages(tmp_path)
    assert "<title>Model reliability study (blinded)</title>" in blinded and "spurious signal" not in blinded
    assert "a spurious signal: a tag added to images of class 'disk'." in told  # config text, as given
