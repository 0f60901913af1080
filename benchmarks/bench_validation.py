"""Validations per second: fastjsonschema (federation.validation) vs jsonschema's Draft7Validator.

Run: ``.venv/bin/python benchmarks/bench_validation.py [--seconds 1.0]``. Needs the test extra
(jsonschema). Prints one line per shape plus a JSON summary; nothing here is a test assertion.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT7

from federation.validation import JSON_SCHEMAS_DIR, load_schema, validator
from schemas import SCHEMAS_DIR

SHAPES = ("support", "proposal")


def document(shape: str) -> dict[str, Any]:
    """The published (signed) example of a shape."""
    loaded: dict[str, Any] = json.loads((SCHEMAS_DIR / "examples" / f"{shape}.json").read_text())
    return loaded


def draft7(shape: str) -> Callable[[Any], None]:
    """jsonschema's Draft7Validator over the same files, refs served from a local registry."""
    schemas = [json.loads(p.read_text("utf-8")) for p in JSON_SCHEMAS_DIR.glob("*.schema.json")]
    registry = Registry().with_resources((s["$id"], DRAFT7.create_resource(s)) for s in schemas)
    checker = jsonschema.Draft7Validator(load_schema(shape), registry=registry)

    def check(document: Any) -> None:
        checker.validate(document)

    return check


def rate(check: Callable[[Any], None], doc: dict[str, Any], seconds: float) -> float:
    """Validations per second, counted over at least ``seconds`` of wall time."""
    check(doc)  # warm up, and prove the document is valid
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            check(doc)
        done += 100
    return done / elapsed


def main() -> None:
    """Measure each shape with both validators and print the rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for shape in SHAPES:
        doc = document(shape)
        fast = rate(validator(shape), doc, args.seconds)
        slow = rate(draft7(shape), doc, args.seconds)
        results[shape] = {"fastjsonschema": round(fast), "jsonschema": round(slow)}
        results[shape]["ratio"] = round(fast / slow, 1)
        line = f"{shape:10} fastjsonschema {fast:10,.0f}/s  jsonschema {slow:9,.0f}/s"
        print(f"{line}  ratio x{fast / slow:.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
