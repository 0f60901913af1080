"""Resident and remote text made safe: markdown to sanitised HTML, previews, bounded lengths.

Everything here is pure (no I/O). Local content is written in CommonMark and rendered once;
HTML from other servers (Mastodon's ``content``) is *always* re-sanitised with the same
allow-list before it is stored or shown (DESIGN.md §6, vocab-spec "content is sanitised HTML").

The allow-list: ``p br strong em a ul ol li blockquote code pre h3 h4``; ``a`` keeps only an
absolute ``http``/``https``/``mailto`` ``href`` and always gets
``rel="nofollow noopener noreferrer"`` (set by the sanitiser, never copied from the input).
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from activitypub.errors import Problem

if TYPE_CHECKING:
    # Imported where the sanitiser and the renderer are built: an instance that has shown
    # and received no content yet does not hold markdown-it and nh3 (~2.3 MB).
    import nh3
    from markdown_it import MarkdownIt
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

# Length limits (vocab-spec "Length limits"; Decidim's default comment length is 1000).
NAME_MAX = 150
SUMMARY_MAX = 500
SOURCE_MAX = 5000
CONTENT_MAX = 10000
ANSWER_MAX = 5000
CONCLUSIONS_MAX = 5000
COMMENT_SOURCE_MAX = 1000

ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "em", "a", "ul", "ol", "li", "blockquote", "code", "pre", "h3", "h4"}
)
LINK_REL = "nofollow noopener noreferrer"
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Removed with everything inside them: their text is code or markup, never prose to keep.
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "noscript", "template", "textarea", "title", "object",
     "embed", "svg", "math", "select", "noembed", "noframes", "xmp", "head"}
)  # fmt: skip
# Markdown heading levels mapped onto the two the allow-list keeps (the page owns h1/h2).
_HEADING_TAG = {1: "h3"}
_HEADING_DEFAULT = "h4"
_ABSOLUTE_HTTP = re.compile(r"^https?://[^/?#\s]", re.IGNORECASE)
_BLOCK_TAGS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
     "tr", "table", "section", "article", "header", "footer", "hr"}
)  # fmt: skip
_SKIP_TEXT_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})


class ContentError(ValueError):
    """A text field broke a content rule; names the field, the rule and (for lengths) the limit."""

    def __init__(self, field: str, rule: str, detail: str, limit: int | None = None) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.rule = rule
        self.detail = detail
        self.limit = limit

    def problem(self) -> Problem:
        """This error as a 400 problem+json (RFC 9457) carrying ``field`` and ``rule``."""
        return Problem(400, "Invalid content", f"{self.field}: {self.detail}",
                       field=self.field, rule=self.rule)  # fmt: skip


def check_length(field: str, value: str, limit: int) -> None:
    """Refuse ``value`` longer than ``limit`` characters (code points), naming field and limit."""
    if len(value) > limit:
        detail = f"is {len(value)} characters long; the limit is {limit}"
        raise ContentError(field, "too_long", detail, limit)


def normalise_text(value: str, field: str = "text") -> str:
    """NFC-normalise and strip ``value``; CRLF/CR become LF; other control characters are refused.

    Allowed whitespace controls are newline and tab. Browsers submit textareas with CRLF,
    so carriage returns are folded into newlines instead of refused.
    """
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        # Cc: C0/C1 controls and DEL; Cs: lone surrogates, which cannot be stored as UTF-8.
        if category in ("Cc", "Cs") and char not in "\n\t":
            detail = f"contains the control character U+{ord(char):04X} at position {index}"
            raise ContentError(field, "control_character", detail)
    return unicodedata.normalize("NFC", text).strip()


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Second line of defence after nh3's scheme check: only absolute http(s) and mailto links."""
    if tag == "a" and attribute == "href":
        if _ABSOLUTE_HTTP.match(value) or value.lower().startswith("mailto:"):
            return value
        return None
    return value


@functools.cache
def _cleaner() -> nh3.Cleaner:
    """The one sanitiser configuration (built on first use, never at import)."""
    import nh3

    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={"a": {"href"}},
        attribute_filter=_keep_attribute,
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
    )


def sanitise_html(html_text: str) -> str:
    """Reduce any HTML (local or from other servers) to the allow-list; idempotent."""
    return _cleaner().clean(html_text)


def _render_heading_open(
    renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    level = int(tokens[idx].tag[1:])
    return f"<{_HEADING_TAG.get(level, _HEADING_DEFAULT)}>"


def _render_heading_close(
    renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    level = int(tokens[idx].tag[1:])
    return f"</{_HEADING_TAG.get(level, _HEADING_DEFAULT)}>\n"


def _render_image(
    renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # img is not on the allow-list: keep what the author wrote as its description.
    alt = renderer.renderInlineAsText(tokens[idx].children or [], options, env)
    return html.escape(str(alt), quote=False)


@functools.cache
def _markdown() -> MarkdownIt:
    """CommonMark with raw HTML escaped (html=False), no linkify; images become their alt text."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})

    md.add_render_rule("image", _render_image)
    md.add_render_rule("heading_open", _render_heading_open)
    md.add_render_rule("heading_close", _render_heading_close)
    return md


def render_markdown(source: str) -> str:
    """Render CommonMark ``source`` (spec 0.31) to allow-listed HTML; raw HTML in it is escaped."""
    return sanitise_html(_markdown().render(source))


def render_field(
    field: str, source: str, source_limit: int = SOURCE_MAX, html_limit: int = CONTENT_MAX
) -> tuple[str, str]:
    """Normalise, bound and render a markdown field: ``(source, html)``, or ContentError."""
    text = normalise_text(source, field)
    check_length(field, text, source_limit)
    rendered = render_markdown(text)
    check_length(field, rendered, html_limit)
    return text, rendered


class _TextCollector(HTMLParser):
    """Collects the text of an HTML fragment, one line per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[str]] = [[]]
        self._skipping = 0

    def _break(self) -> None:
        if self.lines[-1]:
            self.lines.append([])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TEXT_TAGS:
            self._skipping += 1
        elif tag == "br" or tag in _BLOCK_TAGS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TEXT_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.lines[-1].append(data)

    def text(self) -> str:
        joined = (" ".join("".join(parts).split()) for parts in self.lines)
        return "\n".join(line for line in joined if line)


def _truncate(text: str, limit: int) -> str:
    """Cut to at most ``limit`` characters ending in "…", at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = max(head.rfind(" "), head.rfind("\n"))
    # Only back off to a word boundary when it keeps most of the allowance.
    if cut >= limit // 2:
        head = head[:cut]
    return head.rstrip() + "…"


def plain_text(html_text: str, limit: int | None = None) -> str:
    """The text of an HTML fragment for previews: one line per block, spaces collapsed, unescaped.

    The result is plain text: escape it again before putting it into HTML.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    collector = _TextCollector()
    collector.feed(html_text)
    collector.close()
    text = collector.text()
    return text if limit is None else _truncate(text, limit)
