"""Every rule name raised anywhere in federation/instance is in ``rules.RULES`` with its status.

The source is read with :mod:`ast`: each ``refuse``/``_refuse``/``Refused``/``RuleViolation``
call (and ``_require_phase``'s rule argument) names its rule with a string literal, which must
be in the table; the few calls that pass a rule on (a variable) are listed, and the reasons
they forward (FEP-fe34 checks of ``activitypub.inbox``, FEP-8b32 proof failures, private
reads) are checked one by one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from activitypub import inbox
from activitypub.integrity import ProofFailure
from federation.instance import readaccess
from federation.instance.readaccess import private_reason
from federation.instance.rules import RULES
from federation.instance.web.messages import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "federation" / "instance"
RAISERS = {"refuse": 0, "_refuse": 0, "Refused": 0, "RuleViolation": 0, "_require_phase": 3}
# Calls that forward a rule held in a variable: (file, enclosing function).
FORWARDERS = {
    ("acts.py", "refuse"),
    ("rules.py", "_refuse"),
    ("rules.py", "_require_phase"),
    ("handlers_announce.py", "authentic"),
    ("handlers_announce.py", "_authorise_inner"),
}


@dataclass(frozen=True)
class Raised:
    file: str
    function: str
    line: int
    rule: str | None  # None: not a literal
    status: int | None  # a literal status argument, if any


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _is_self_call(func: ast.expr) -> bool:
    # ``self._refuse(arrival, rule, detail)`` in handlers.py logs a refusal; it raises nothing.
    return isinstance(func, ast.Attribute) and _name(func.value) == "self"


def _str(node: ast.expr) -> str | None:
    value = node.value if isinstance(node, ast.Constant) else None
    return value if isinstance(value, str) else None


def _int(node: ast.expr) -> int | None:
    value = node.value if isinstance(node, ast.Constant) else None
    return value if isinstance(value, int) else None


def _calls_in(path: Path) -> list[Raised]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[Raised] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Call) and not _is_self_call(child.func):
                name = _name(child.func)
                position = RAISERS.get(name or "")
                if position is not None and len(child.args) > position:
                    rule = _str(child.args[position])
                    status = _int(child.args[1]) if name == "RuleViolation" else None
                    found.append(Raised(path.name, function, child.lineno, rule, status))
            visit(child, inner)

    visit(tree, "<module>")
    return found


def _raised() -> list[Raised]:
    return [r for path in sorted(INSTANCE.rglob("*.py")) for r in _calls_in(path)]


def test_every_literal_rule_raised_is_in_the_table() -> None:
    raised = _raised()
    literal = [r for r in raised if r.rule is not None]
    assert len(literal) > 60  # the scan really finds the refusals
    missing = sorted({(r.rule, r.file, r.line) for r in literal if r.rule not in RULES})
    assert not missing, missing
    # A literal status given beside the rule must be the table's.
    wrong = [r for r in literal if r.status is not None and r.status != RULES[str(r.rule)]]
    assert not wrong, wrong
    for expected in ("not_admin", "not_owner", "no_vote_to_withdraw", "wrong_audience"):
        assert expected in {r.rule for r in literal}


def test_only_known_forwarders_raise_a_rule_held_in_a_variable() -> None:
    forwarded = {(r.file, r.function) for r in _raised() if r.rule is None}
    assert forwarded == FORWARDERS


def test_the_statuses_the_brief_names() -> None:
    assert RULES["not_admin"] == 403 and RULES["not_owner"] == 403
    assert RULES["no_vote_to_withdraw"] == 409 and RULES["wrong_audience"] == 400


def _inbox_reasons() -> dict[str, int]:
    """``refused(status, "reason", …)`` inside activitypub.inbox's FEP-fe34 checks."""
    tree = ast.parse(Path(inbox.__file__).read_text("utf-8"))
    reasons: dict[str, int] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        if function.name not in ("authorise", "_check_owner_only"):
            continue
        for call in ast.walk(function):
            if isinstance(call, ast.Call) and _name(call.func) == "refused":
                status, reason = _int(call.args[0]), _str(call.args[1])
                assert isinstance(status, int) and isinstance(reason, str)
                reasons[reason] = status
    return reasons


def test_forwarded_reasons_are_in_the_table() -> None:
    # The FEP-fe34 checks re-run on an announced activity (handlers_announce._authorise_inner).
    reasons = _inbox_reasons()
    assert set(reasons) == {"origin_mismatch", "object_missing", "not_owner"}
    assert all(RULES[reason] == status for reason, status in reasons.items())
    assert RULES["not_authorised"] == 403  # its fallback
    # The proof failures handlers_announce.authentic refuses outright.
    for failure in (ProofFailure.SIGNATURE, ProofFailure.NOT_OWNER):
        assert RULES[str(failure)] == 403
    # Private reads (readaccess.require_reader).
    support = {"type": "Like", "actor": "a", "object": "b", "to": ["c"]}
    for reason in ("supports_private", private_reason({"type": "Accept"})):
        assert RULES[reason] == 403
    assert "supports_private" in Path(readaccess.__file__).read_text("utf-8")
    assert private_reason(support) in RULES


def test_every_rule_has_a_message_in_every_language() -> None:
    for lang, messages in CATALOGUE.items():
        missing = sorted(rule for rule in RULES if f"rule.{rule}" not in messages)
        assert not missing, (lang, missing)
