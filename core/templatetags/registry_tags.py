"""Template helpers: sanitised Markdown for model cards and descriptions."""

from functools import lru_cache

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import mark_safe

register = template.Library()

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


@register.filter
def markdown(text: str) -> str:
    """Markdown to HTML, then cleaned by an allow-list (nh3): no scripts, no event handlers, no styles."""
    return mark_safe(_clean_html(text or ""))


@lru_cache(maxsize=128)
def _clean_html(text: str) -> str:
    # Remembered by the text itself: a page shows the same model card load after load, and converting one
    # costs milliseconds (a changed card is another text, so never a stale one).
    html = markdown_lib.markdown(text, extensions=["tables", "fenced_code"])
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}}, url_schemes={"http", "https", "mailto"}
    )
