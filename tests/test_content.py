"""federation.instance.content: XSS vectors neutralised, allowed markup kept, limits hold."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.instance.content import (
    ALLOWED_TAGS,
    ANSWER_MAX,
    COMMENT_SOURCE_MAX,
    CONCLUSIONS_MAX,
    CONTENT_MAX,
    LINK_REL,
    NAME_MAX,
    SOURCE_MAX,
    SUMMARY_MAX,
    ContentError,
    check_length,
    normalise_text,
    plain_text,
    render_field,
    render_markdown,
    sanitise_html,
)


class _Inventory(HTMLParser):
    """Every tag and attribute in an HTML fragment, as the browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)


def inventory(fragment: str) -> _Inventory:
    parser = _Inventory()
    parser.feed(fragment)
    parser.close()
    return parser


def assert_safe(fragment: str) -> None:
    """Only allow-listed tags; on ``a`` only a safe href and our rel; nothing else anywhere."""
    found = inventory(fragment)
    assert set(found.tags) <= ALLOWED_TAGS, found.tags
    for tag, name, value in found.attrs:
        assert tag == "a" and name in ("href", "rel"), (tag, name, value)
        if name == "rel":
            assert value == LINK_REL
        else:
            assert value is not None
            assert value.lower().startswith(("http://", "https://", "mailto:")), value


XSS_VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" &#14;javascript:alert(1)">x</a>',
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="//evil.example/">x</a>',
    '<a href="/relative">x</a>',
    '<p onclick="alert(1)" onmouseover="alert(2)">x</p>',
    '<img src=x onerror="alert(1)">',
    '<body onload="alert(1)">',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<style>p{background:url(javascript:alert(1))}</style>",
    '<iframe src="https://evil.example/"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<svg><script>alert(1)</script></svg>",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<form action="javascript:alert(1)"><button>go</button></form>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<a href="https://ok.example/" target="_blank" rel="opener">x</a>',
    "<p>unclosed <strong>bold <em>nested",
    "<<p>>double</p>",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    '<p><a href="https://ok.example/"<img src=x onerror=alert(1)>>x</a></p>',
    "<template><script>alert(1)</script></template>",
    '<details open ontoggle="alert(1)">x</details>',
]


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_sanitise_html_neutralises_xss_vectors(vector: str) -> None:
    cleaned = sanitise_html(vector)
    assert_safe(cleaned)
    lowered = cleaned.lower()
    for needle in (
        "<script",
        "javascript:",
        "onerror",
        "onload",
        "onclick",
        "<iframe",
        "<svg",
        "style=",
        "data:text",
        "<img",
        "<object",
        "<embed",
        "<form",
        "<meta",
    ):
        assert needle not in lowered, (needle, cleaned)


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_markdown_escapes_raw_html(vector: str) -> None:
    rendered = render_markdown(vector)
    assert_safe(rendered)
    # html=False: any tag the author typed comes out as text, never as markup.
    assert "<script" not in rendered.lower()


def test_markdown_html_in_source_is_escaped_text() -> None:
    rendered = render_markdown("<b>bold?</b> <script>alert(1)</script>")
    assert rendered == "<p>&lt;b&gt;bold?&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert plain_text(rendered) == "<b>bold?</b> <script>alert(1)</script>"


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](vbscript:x)",
        "[x](/relative/path)",
        "<javascript:alert(1)>",
        "![x](javascript:alert(1))",
        '[x](https://ok.example/ "title" onclick=alert(1))',
    ],
)
def test_markdown_links_with_bad_urls_lose_them(source: str) -> None:
    rendered = render_markdown(source)
    assert_safe(rendered)
    assert "href=" not in rendered or 'href="https://ok.example/"' in rendered


def test_allowed_markup_survives_markdown() -> None:
    source = (
        "# Title\n\n## Sub\n\n**bold** and _em_ and `code`\n\n"
        "> quoted\n\n- a\n- b\n\n1. one\n2. two\n\n```\nx < y\n```\n\n"
        "line one  \nline two\n\n[link](https://example.org/a?b=1&c=2) <a@example.org>"
    )
    rendered = render_markdown(source)
    assert "<h3>Title</h3>" in rendered
    assert "<h4>Sub</h4>" in rendered
    assert "<strong>bold</strong>" in rendered and "<em>em</em>" in rendered
    assert "<code>code</code>" in rendered
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in rendered
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in rendered
    assert "<ol>\n<li>one</li>\n<li>two</li>\n</ol>" in rendered
    assert "<pre><code>x &lt; y\n</code></pre>" in rendered
    assert "line one<br>\nline two" in rendered
    assert f'<a href="https://example.org/a?b=1&amp;c=2" rel="{LINK_REL}">link</a>' in rendered
    assert f'<a href="mailto:a@example.org" rel="{LINK_REL}">a@example.org</a>' in rendered
    assert_safe(rendered)


def test_markdown_heading_levels_map_to_h3_h4() -> None:
    rendered = render_markdown("# a\n\n### b\n\n###### c")
    assert rendered == "<h3>a</h3>\n<h4>b</h4>\n<h4>c</h4>\n"


def test_markdown_images_become_their_alt_text() -> None:
    assert render_markdown("![a *red* door](https://example.org/d.png)") == "<p>a red door</p>\n"


def test_markdown_does_not_linkify_bare_urls() -> None:
    assert render_markdown("see https://example.org") == "<p>see https://example.org</p>\n"


def test_links_get_rel_and_input_rel_is_replaced() -> None:
    cleaned = sanitise_html('<a href="https://x.example/" rel="opener" target="_blank">x</a>')
    assert cleaned == f'<a href="https://x.example/" rel="{LINK_REL}">x</a>'


def test_mastodon_content_keeps_text_and_links() -> None:
    # The shape Mastodon publishes: mention spans, invisible prefix spans, a hashtag link.
    content = (
        '<p><span class="h-card"><a href="https://gracia.barri.example/users/anna" '
        'class="u-url mention">@<span>anna</span></a></span> Molt d\'acord!<br>'
        '<a href="https://mastodon.example/tags/barri" class="mention hashtag" rel="tag">'
        "#<span>barri</span></a></p>"
    )
    cleaned = sanitise_html(content)
    assert cleaned == (
        f'<p><a href="https://gracia.barri.example/users/anna" rel="{LINK_REL}">@anna</a>'
        f' Molt d\'acord!<br><a href="https://mastodon.example/tags/barri" rel="{LINK_REL}">'
        "#barri</a></p>"
    )


def test_malformed_html_is_balanced() -> None:
    assert sanitise_html("<p>a <strong>b <em>c") == "<p>a <strong>b <em>c</em></strong></p>"
    assert sanitise_html("</p></strong>x") == "<p></p>x"


def test_disallowed_tags_keep_text_dangerous_ones_lose_it() -> None:
    assert sanitise_html("<h1>Head</h1><div>div</div><span>s</span>") == "Headdivs"
    assert sanitise_html("a<script>b</script><style>c</style><iframe>d</iframe>e") == "ae"


def test_rendered_markdown_is_a_fixed_point_of_sanitise() -> None:
    rendered = render_markdown("**a** [b](https://b.example/) `c`\n\n> d")
    assert sanitise_html(rendered) == rendered


fragments = st.sampled_from(
    ["<", ">", "/", "=", '"', "'", "a", "p", "script", "svg", "img", "href", "on", "error",
     "javascript:", "https://x.example/", "<a href=", "<p>", "</p>", "<strong>", "&#x3C;",
     "&lt;", " ", "\n", "style", "<!--", "-->", "<![CDATA[", "]]>", "src", "`", "[", "](", ")",
     "*", "#", "-", "1."]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(fragments, max_size=40).map("".join))
def test_sanitise_is_safe_and_idempotent_on_random_soup(soup: str) -> None:
    once = sanitise_html(soup)
    assert_safe(once)
    assert sanitise_html(once) == once


@settings(max_examples=200, deadline=None)
@given(st.lists(fragments, max_size=40).map("".join))
def test_render_markdown_is_safe_on_random_soup(soup: str) -> None:
    rendered = render_markdown(soup)
    assert_safe(rendered)
    assert sanitise_html(rendered) == rendered


# -- plain text ---------------------------------------------------------------------------


def test_plain_text_blocks_become_lines_and_entities_decode() -> None:
    html = "<p>Hello &amp; <strong>world</strong></p><p>second<br>line</p><ul><li>a</li></ul>"
    assert plain_text(html) == "Hello & world\nsecond\nline\na"


def test_plain_text_drops_script_and_style_text() -> None:
    assert plain_text("<p>a</p><script>evil()</script><style>p{}</style><p>b</p>") == "a\nb"


def test_plain_text_collapses_whitespace() -> None:
    assert plain_text("<p>  a \n\t b  </p>\n\n<p> c </p>") == "a b\nc"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("the quick brown fox", 12, "the quick…"),
        ("abcdefghijklmnop", 5, "abcd…"),
        ("ab", 1, "…"),
    ],
)
def test_plain_text_limit(text: str, limit: int, expected: str) -> None:
    result = plain_text(f"<p>{text}</p>", limit)
    assert result == expected
    assert len(result) <= limit


def test_plain_text_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        plain_text("<p>x</p>", 0)


# -- lengths and normalisation ------------------------------------------------------------


def test_limits_are_the_contracted_values() -> None:
    assert (NAME_MAX, SUMMARY_MAX, SOURCE_MAX, CONTENT_MAX) == (150, 500, 5000, 10000)
    assert (ANSWER_MAX, CONCLUSIONS_MAX, COMMENT_SOURCE_MAX) == (5000, 5000, 1000)


def test_check_length_accepts_the_limit_and_refuses_one_more() -> None:
    check_length("name", "x" * NAME_MAX, NAME_MAX)
    with pytest.raises(ContentError) as caught:
        check_length("name", "x" * (NAME_MAX + 1), NAME_MAX)
    error = caught.value
    assert (error.field, error.rule, error.limit) == ("name", "too_long", NAME_MAX)
    assert "name" in str(error) and "150" in str(error)
    assert isinstance(error, ValueError)
    problem = error.problem()
    assert problem.status == 400
    assert problem.extensions == {"field": "name", "rule": "too_long"}


def test_check_length_counts_characters_not_bytes() -> None:
    check_length("name", "à" * NAME_MAX, NAME_MAX)


def test_normalise_text_strips_and_composes() -> None:
    assert normalise_text("  Gra\u0300cia \n") == "Gràcia"
    assert normalise_text("a\r\nb\rc\td") == "a\nb\nc\td"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_normalise_text_refuses_control_characters(char: str) -> None:
    with pytest.raises(ContentError) as caught:
        normalise_text(f"a{char}b", "summary")
    assert caught.value.field == "summary"
    assert caught.value.rule == "control_character"
    assert f"U+{ord(char):04X}" in str(caught.value)


def test_render_field_normalises_bounds_and_renders() -> None:
    source, html = render_field("content", "  **hi**\r\n")
    assert (source, html) == ("**hi**", "<p><strong>hi</strong></p>\n")
    with pytest.raises(ContentError) as caught:
        render_field("comment", "x" * (COMMENT_SOURCE_MAX + 1), COMMENT_SOURCE_MAX)
    assert caught.value.limit == COMMENT_SOURCE_MAX
    with pytest.raises(ContentError) as too_big:
        # 2 500 ampersands fit the source limit but not the rendered one (each becomes &amp;).
        render_field("content", "&" * 2500, html_limit=5000)
    assert too_big.value.field == "content" and too_big.value.limit == 5000
