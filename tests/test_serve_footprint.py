"""What an idle instance holds: libraries only some requests need load with the first of them.

An instance must fit a Raspberry Pi (DESIGN.md §1): ``barri serve`` of an instance that has
answered nothing but ``/healthz`` must not have imported the page templates, the markdown
renderer and sanitiser, PyNaCl, the JSON Schema compiler, argon2, the full structured-field
parser, importlib.metadata or rdflib. Each is imported by the code that uses it; these tests
prove it for the serving process, and that what is now written by hand (Content-Digest, a
signer's ``@signature-params``, host-meta's attribute) equals what the library wrote.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import http_sf
import pytest
from http_sf.innerlist import ser_innerlist
from hypothesis import given, settings
from hypothesis import strategies as st

from activitypub.digest import make_content_digest, parse_content_digest
from activitypub.hostmeta import host_meta_xml
from activitypub.rfc9421 import Message, SignatureInput, signature_base
from activitypub.sfields import serialise_inner_list

ROOT = Path(__file__).resolve().parent.parent
#: Top-level names (or dotted prefixes) an idle instance must not have imported.
LAZY = (
    "jinja2",
    "markdown_it",
    "nh3",
    "nacl",
    "fastjsonschema",
    "argon2",
    "http_sf",
    "importlib.metadata",
    "xml.sax",
    "rdflib",
    "pyld",
)

# Builds and starts the app as `barri serve` does (federation.cli._serve), answers one
# /healthz on 127.0.0.1, then prints every module in LAZY that got imported.
_SERVE = """
import asyncio, sys
from federation.config import load_config
from federation.config_writer import InitOptions, write_instance_config
path = write_instance_config(sys.argv[1], InitOptions(
    base_url="http://127.0.0.1:8080", name="Raval", secret="s" * 43, allow_loopback=True))
config = load_config(path)
from federation.instance.app import create_app
from federation.serving import configure_logging
from aiohttp import web

async def main():
    configure_logging(False)
    runner = web.AppRunner(create_app(config), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    status = (await reader.read()).split(b"\\r\\n", 1)[0]
    writer.close()
    await runner.cleanup()
    return status

status = asyncio.run(main())
lazy = sys.argv[2].split(",")
print(status.decode())
print(sorted(n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in lazy)))
"""


def test_an_idle_instance_has_not_imported_what_only_some_requests_need(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SERVE, str(tmp_path), ",".join(LAZY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    status, loaded = result.stdout.splitlines()[-2:]
    assert status == "HTTP/1.1 200 OK"
    assert loaded == "[]"


@pytest.mark.parametrize(
    "algorithms", [("sha-256",), ("sha-512",), ("sha-256", "sha-512"), ("sha-512", "sha-256")]
)
@pytest.mark.parametrize("body", [b"", b'{"type":"Like"}', bytes(range(256)) * 4])
def test_content_digest_is_what_http_sf_serialises(
    algorithms: tuple[str, ...], body: bytes
) -> None:
    names = {"sha-256": "sha256", "sha-512": "sha512"}
    digests = {a: hashlib.new(names[a], body).digest() for a in algorithms}
    members: dict[str, Any] = {a: (raw, {}) for a, raw in digests.items()}
    value = make_content_digest(body, algorithms)
    assert value == http_sf.ser(members)
    assert parse_content_digest(value) == digests


def test_content_digest_of_no_algorithm_is_refused_as_before() -> None:
    with pytest.raises(ValueError):
        http_sf.ser({})
    with pytest.raises(ValueError):
        make_content_digest(b"body", ())


def test_a_flipped_byte_in_a_content_digest_changes_it() -> None:
    value = make_content_digest(b"body")
    flipped = make_content_digest(b"bodz")
    assert value != flipped
    assert base64.b64decode(value.split(":")[1]) == hashlib.sha256(b"body").digest()


@pytest.mark.parametrize(
    "origin", ["https://barri.example", "http://127.0.0.1:8080", "https://a-b.example:8443"]
)
def test_host_meta_attribute_is_what_quoteattr_writes(origin: str) -> None:
    from xml.sax.saxutils import quoteattr

    template = f"{origin}/.well-known/webfinger?resource={{uri}}"
    line = f'  <Link rel="lrdd" template={quoteattr(template)}/>\n'.encode()
    assert line in host_meta_xml(origin)


KEYS = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
# Any sf-string (escapes included), integers, booleans, byte sequences and decimals.
STRINGS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
BARE = (
    STRINGS
    | st.integers(-(10**15) + 1, 10**15 - 1)
    | st.booleans()
    | st.binary(max_size=6)
    | st.decimals("-999.5", "999.5", places=2)
)
PARAMS = st.dictionaries(KEYS, BARE, max_size=3)


def _reference(items: Any, params: Any) -> str:
    """http_sf's serialisation of an inner list (typed loosely: its types are invariant)."""
    return ser_innerlist((items, params))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(STRINGS, PARAMS), max_size=4), PARAMS)
def test_inner_lists_are_written_as_http_sf_writes_them_or_left_to_it(
    items: list[tuple[str, dict[str, Any]]], params: dict[str, Any]
) -> None:
    fast = serialise_inner_list(items, params)
    if fast is not None:
        assert fast == _reference(items, params)


def test_a_signers_signature_params_take_the_fast_path() -> None:
    components: list[tuple[str, dict[str, Any]]] = [
        ("@method", {}),
        ("@target-uri", {}),
        ("content-digest", {}),
    ]
    params = {"created": 1764240000, "keyid": "https://a.example/actor#main-key", "alg": "ed25519"}
    expected = (
        '("@method" "@target-uri" "content-digest");created=1764240000;'
        'keyid="https://a.example/actor#main-key";alg="ed25519"'
    )
    assert serialise_inner_list(components, params) == expected == _reference(components, params)
    # What needs an escape, a token or a decimal is left to http_sf.
    assert serialise_inner_list([('say "hi"', {})], {}) is None
    assert serialise_inner_list([("a", {})], {"q": http_sf.Token("tok")}) is None


def test_the_signature_base_of_a_built_input_is_unchanged() -> None:
    built = SignatureInput(
        "sig1", (("@method", {}), ("@authority", {})), {"created": 1, "nonce": "x y"}
    )
    message = Message.request("POST", "https://b.example/inbox", {"Host": "b.example"})
    base = signature_base(message, built)
    assert base.splitlines() == [
        '"@method": POST',
        '"@authority": b.example',
        '"@signature-params": ("@method" "@authority");created=1;nonce="x y"',
    ]
