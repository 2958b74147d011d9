"""HTML pages from the Jinja2 templates: every value escaped once (as `html.escape`), markup left
alone, JSON that cannot end its <script>, static files inlined verbatim, a missing name an error.
The pages themselves: tests/report/test_templates.py."""

import html

import jinja2
import pytest

from spurlab.io.render import TEMPLATES, environment, inline, render, static_text

NASTY = '<b>"it\'s" & </script>'


def test_values_are_escaped_once_and_markup_is_not():
    env = environment()
    page = env.from_string("{{ v }}|{{ m }}|{{ w|safe }}").render(v=NASTY, m=inline("site.css")[:5], w="<i>")
    assert page == f"{html.escape(NASTY)}|{static_text('site.css')[:5]}|<i>"
    assert env.from_string("{{ n }}").render(n=3) == "3"


def test_json_filter_cannot_close_the_script():
    out = environment().from_string("{{ d|json }}").render(d={"s": NASTY})
    assert "</" not in out and out == '{"s": "<b>\\"it\'s\\" & <\\/script>"}'
    assert environment().from_string("{{ d|json(sort_keys=True) }}").render(d={"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_static_files_are_inlined_verbatim():
    css = (TEMPLATES / "static" / "site.css").read_text()
    assert static_text("site.css") == css and str(inline("site.css")) == css.removesuffix("\n")


def test_a_missing_name_is_an_error_and_the_same_context_gives_the_same_bytes():
    template = next(p.relative_to(TEMPLATES).as_posix() for p in sorted(TEMPLATES.rglob("*.html.j2")))
    with pytest.raises(jinja2.UndefinedError):
        render(template)
    env = environment()
    assert env is environment()  # one environment, cached
    t = env.from_string("{% for k in d %}{{ k }}={{ d[k] }};{% endfor %}")
    assert t.render(d={"a": "<", "b": 1}) == t.render(d={"a": "<", "b": 1}) == "a=&lt;;b=1;"
