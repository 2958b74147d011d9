"""HTML pages from the Jinja2 templates under `spurlab/templates/` (docs/architecture.md#html-pages).

`site/` (the results site), `tasks/` (annotation task pages) and `study/` (the blinded study's
questionnaires) hold the page templates (`*.html.j2`); `static/` holds their CSS and JavaScript,
which a template inlines with `inline("name")` (the pages stay single files) and the site also
writes beside its pages (`static_text`). Static files are inserted verbatim, never rendered.

Escaping: every `{{ value }}` is escaped with `html.escape` (& < > " ' as &amp; &lt; &gt; &quot;
&#x27;) unless it is markup already (a macro's output, `inline`, the `json` filter, `|safe`), so
values are passed raw, never pre-escaped. Same context -> same bytes.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _escape(value) -> Markup:
    """`html.escape` (quote=True) of a value that is not markup yet: the escaping the pages had
    before templates, applied to every `{{ }}` output (autoescape then leaves the markup alone)."""
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    return Markup(html.escape(str(value)))


def _json(value, sort_keys: bool = False) -> Markup:
    """`value` as JSON for a <script> element: `</` written `<\\/` so the data cannot end it."""
    return Markup(json.dumps(value, sort_keys=sort_keys).replace("</", "<\\/"))


def static_text(name: str) -> str:
    """The text of `templates/static/<name>`, exactly as stored."""
    source, _, _ = environment().loader.get_source(environment(), f"static/{name}")
    return source


def inline(name: str) -> Markup:
    """`templates/static/<name>` to inline in a page, without its final newline (the template
    places the line break)."""
    return Markup(static_text(name).removesuffix("\n"))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["inline"] = inline
    env.filters["json"] = _json
    return env


def render(template: str, **context) -> str:
    """`templates/<template>` rendered with `context` (a missing name is an error)."""
    return environment().get_template(template).render(**context)
