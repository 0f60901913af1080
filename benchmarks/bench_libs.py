"""The faster library against the one Barri uses, on its hot paths (issue 8 "Targets").

- Ed25519 sign and verify, one core: PyNaCl (libsodium) against ``cryptography`` (OpenSSL),
  same key seed and same message (the 64-byte hashData an eddsa-jcs-2022 proof signs).
- Parsing: ``json.loads`` against ``orjson.loads`` of a signed support delivery body and of an
  outbox page (20 proved ``Create{Note}``); ``rfc8785.dumps`` (JCS) of the document each one
  parsed; ``json.dumps`` against ``orjson.dumps`` of the page. ``orjson.dumps`` with sorted
  keys is timed beside ``rfc8785.dumps`` and Barri's own ``canonicalize`` (which takes the
  standard library's C encoder for float-free trees) and compared byte for byte: it equals
  RFC 8785 only for documents without floats whose keys sort the same in UTF-16 and UTF-8.

Ratios are candidate / current (above 1: the candidate is faster). The last line recommends
what to use on the hot path, by these numbers (orjson is: ``activitypub/jsontext.py``).

Run: ``.venv/bin/python benchmarks/bench_libs.py [--seconds 1.0]``; PyNaCl and orjson are
runtime dependencies (``pip install -e .``). Also written to ``benchmarks/results/libs.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from bench_signatures import rate
from cryptography.hazmat.primitives.asymmetric import ed25519
from provenance import code_version

from activitypub.integrity import canonicalize, create_proof
from federation.model import Comment, Support
from federation.vocab.comment import comment_to_ap
from federation.vocab.context import document_context, format_datetime
from federation.vocab.support import support_to_ap

RESULTS = Path(__file__).resolve().parent / "results"
ORIGIN = "https://raval.barri.example"
ACTOR = f"{ORIGIN}/users/ana"
NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
INSTALL = "pip install -e ."


def missing_libraries() -> list[str]:
    """The compared libraries (runtime dependencies) that cannot be imported here."""
    return [name for name in ("nacl", "orjson") if importlib.util.find_spec(name) is None]


def support_body(key: ed25519.Ed25519PrivateKey) -> bytes:
    """A signed support delivery body, as an instance POSTs it to the aggregator."""
    like = Support(
        id=f"{ACTOR}/supports/1", actor=ACTOR, proposal=f"{ORIGIN}/proposals/7",
        published=NOW, to=(f"{ORIGIN}/groups/av", "https://ajuntament.barri.example/actor"),
    )  # fmt: skip
    return json.dumps(create_proof(support_to_ap(like), key, ACTOR + "#ed25519-key")).encode()


def outbox_page(key: ed25519.Ed25519PrivateKey, items: int = 20) -> dict[str, Any]:
    """An outbox page of proved ``Create{Note}`` comments, as the instance serves it."""
    proposal = f"{ORIGIN}/proposals/7"
    created = []
    for n in range(items):
        when = NOW + timedelta(minutes=n)
        note = comment_to_ap(
            Comment(
                id=f"{ORIGIN}/comments/{n}", author=ACTOR, in_reply_to=proposal,
                context=f"{proposal}/context", depth=1, published=when,
                content_html=f"<p>Comentari {n}: <em>més ombra</em> al carrer.</p>",
                source_markdown=f"Comentari {n}: *més ombra* al carrer.",
                audience=f"{ORIGIN}/groups/av", to=("https://www.w3.org/ns/activitystreams#Public",),
                cc=(f"{ORIGIN}/groups/av",),
            )
        )  # fmt: skip
        note.pop("@context", None)
        activity = {
            "@context": document_context(), "id": f"{ORIGIN}/activities/{n}", "type": "Create",
            "actor": ACTOR, "object": note, "published": format_datetime(when),
            "to": note["to"], "cc": note["cc"],
        }  # fmt: skip
        created.append(create_proof(activity, key, ACTOR + "#ed25519-key"))
    return {
        "@context": document_context(), "id": f"{ACTOR}/outbox?page=true",
        "type": "OrderedCollectionPage", "partOf": f"{ACTOR}/outbox",
        "next": f"{ACTOR}/outbox?after=abc", "orderedItems": created,
    }  # fmt: skip


def best_rate(operation: Callable[[], object], seconds: float, repeats: int = 5) -> float:
    """The best of ``repeats`` short rates: other work on the machine only ever slows a run
    down, so the fastest one is the closest to what this core can do (as timeit advises)."""
    return max(rate(operation, seconds / repeats) for _ in range(repeats))


def rounded(value: Any) -> Any:
    """Floats to four significant digits, recursively (for the JSON results files)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return value


def pair(
    current: Callable[[], object], candidate: Callable[[], object], seconds: float
) -> dict[str, float]:
    """Both rates, measured in alternation (best of five each), and their ratio."""
    now = then = 0.0
    for _ in range(5):
        now = max(now, rate(current, seconds / 5))
        then = max(then, rate(candidate, seconds / 5))
    return {"current_per_s": now, "candidate_per_s": then, "ratio": then / now}


def ed25519_rows(seconds: float) -> dict[str, Any]:
    """cryptography (current) against PyNaCl (candidate), same seed, same 64-byte message."""
    import nacl.signing

    seed = bytes(range(32))
    ours = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    theirs = nacl.signing.SigningKey(seed)
    message = hashlib.sha256(b"proof options").digest() + hashlib.sha256(b"document").digest()
    signature = ours.sign(message)
    public, verify_key = ours.public_key(), theirs.verify_key
    same = theirs.sign(message).signature == signature  # Ed25519 is deterministic
    return {
        "identical_signatures": same,
        "sign": pair(lambda: ours.sign(message), lambda: theirs.sign(message), seconds),
        "verify": pair(
            lambda: public.verify(signature, message),
            lambda: verify_key.verify(message, signature),
            seconds,
        ),
    }


def json_rows(body: bytes, page: dict[str, Any], seconds: float) -> dict[str, Any]:
    """json (current) against orjson (candidate): parse, JCS of what each parsed, serialise."""
    import orjson

    page_body = json.dumps(page, ensure_ascii=False).encode()
    parsed_json, parsed_orjson = json.loads(body), orjson.loads(body)
    jcs = rfc8785.dumps(parsed_json)
    sorted_bytes = orjson.dumps(parsed_json, option=orjson.OPT_SORT_KEYS)
    return {
        "support_body_bytes": len(body),
        "page_bytes": len(page_body),
        "loads support body": pair(lambda: json.loads(body), lambda: orjson.loads(body), seconds),
        "loads outbox page": pair(
            lambda: json.loads(page_body), lambda: orjson.loads(page_body), seconds
        ),
        "rfc8785.dumps of the support, parsed by json / by orjson": pair(
            lambda: rfc8785.dumps(parsed_json), lambda: rfc8785.dumps(parsed_orjson), seconds
        ),
        "rfc8785.dumps vs orjson.dumps sorted keys (support)": pair(
            lambda: rfc8785.dumps(parsed_json),
            lambda: orjson.dumps(parsed_json, option=orjson.OPT_SORT_KEYS),
            seconds,
        ),
        "Barri's canonicalize vs orjson.dumps sorted keys (support)": pair(
            lambda: canonicalize(parsed_json),
            lambda: orjson.dumps(parsed_json, option=orjson.OPT_SORT_KEYS),
            seconds,
        ),
        "orjson_sorted_equals_jcs": sorted_bytes == jcs,
        "canonicalize_equals_jcs": canonicalize(parsed_json) == jcs,
        "jcs_same_from_both_parsers": rfc8785.dumps(parsed_orjson) == jcs,
        "dumps outbox page": pair(
            lambda: json.dumps(page, ensure_ascii=False), lambda: orjson.dumps(page), seconds
        ),
    }


def measure_libs(seconds: float = 1.0) -> dict[str, Any]:
    """Every comparison; the libraries must be installed (see :func:`missing_libraries`)."""
    key = ed25519.Ed25519PrivateKey.generate()
    summary: dict[str, Any] = {"ed25519": ed25519_rows(seconds)}
    summary["json"] = json_rows(support_body(key), outbox_page(key), seconds)
    summary["recommendation"] = recommendation(summary)
    return summary


def recommendation(summary: dict[str, Any]) -> str:
    """What the numbers say for the hot path (a library must win by 20 % to be worth it)."""
    verify = summary["ed25519"]["verify"]["ratio"]
    loads = summary["json"]["loads support body"]["ratio"]
    dumps = summary["json"]["dumps outbox page"]["ratio"]
    jcs = summary["json"]["Barri's canonicalize vs orjson.dumps sorted keys (support)"]["ratio"]
    parts = [
        f"Ed25519 verify: {'PyNaCl' if verify > 1.2 else 'cryptography'} (x{verify:.2f})",
        f"parsing: {'orjson' if loads > 1.2 else 'json'} (x{loads:.2f})",
        f"page serialisation: {'orjson' if dumps > 1.2 else 'json'} (x{dumps:.2f})",
    ]
    if summary["json"]["orjson_sorted_equals_jcs"]:
        parts.append(
            f"JCS: orjson sorted keys is x{jcs:.1f} Barri's canonicalize, byte-identical here"
            f" ({'worth a float-free fast path' if jcs > 1.2 else 'keep canonicalize'})"
        )
    return "; ".join(parts)


def report(summary: dict[str, Any]) -> None:
    """The readable lines."""
    print(f"ed25519: identical signatures {summary['ed25519']['identical_signatures']}")
    for op in ("sign", "verify"):
        row = summary["ed25519"][op]
        print(
            f"  {op:6} cryptography {row['current_per_s']:9,.0f}/s   PyNaCl"
            f" {row['candidate_per_s']:9,.0f}/s   ratio {row['ratio']:.2f}"
        )
    found = summary["json"]
    print(f"json: support body {found['support_body_bytes']:,} B, page {found['page_bytes']:,} B")
    for name, row in found.items():
        if isinstance(row, dict):
            print(
                f"  {name:56} current {row['current_per_s']:9,.0f}/s  candidate"
                f" {row['candidate_per_s']:9,.0f}/s  ratio {row['ratio']:.2f}"
            )
    print(f"  orjson sorted keys == JCS bytes: {found['orjson_sorted_equals_jcs']}")
    print(f"recommendation: {summary['recommendation']}")


def main() -> None:
    """Check the libraries are installed, measure, print, write benchmarks/results/libs.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args()
    missing = missing_libraries()
    if missing:
        print(f"bench_libs needs {', '.join(missing)}: {INSTALL}")
        sys.exit(2)
    load = os.getloadavg()[0]
    summary = measure_libs(args.seconds)
    summary["load_average_1min"] = [load, os.getloadavg()[0]]  # other work skews it all
    summary["code"] = code_version()
    report(summary)
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(rounded(summary), indent=2) + "\n"
    (RESULTS / "libs.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
