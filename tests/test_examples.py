"""schemas/examples: inline context, JSON-LD rules, FEP-8b32 proofs, regenerable byte for byte."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from activitypub.actors import ACTOR_CONTEXT, actor_keys, ed25519_key_id, main_key_id
from activitypub.integrity import ProofError, ProofFailure, verify_document
from activitypub.jsonld import check_document
from activitypub.keys import private_key_from_pem
from schemas import CONTEXTS_DIR, SCHEMAS_DIR, make_examples
from tests.conftest import REPO

EXAMPLES = SCHEMAS_DIR / "examples"
TEMPLATES = EXAMPLES / "templates"
KEYS = EXAMPLES / "keys"
AS2 = "https://www.w3.org/ns/activitystreams"
DI_V2 = "https://w3id.org/security/data-integrity/v2"
PUBLIC = AS2 + "#Public"
ANA = "https://gracia.barri.example/users/ana"
GROUP = "https://gracia.barri.example/groups/association"
AGGREGATOR = "https://city.barri.example/actor"

ACTOR_SHAPES = ("actor-person", "actor-group", "actor-application", "actor-service")
SIGNED_SHAPES = (
    "process",
    "proposal",
    "debate",
    "comment",
    "support",
    "undo-support",
    "comment-vote",
    "undo-comment-vote",
    "official-answer",
    "announce",
    "delete",
    "tombstone",
    "tally",
)
SHAPES = ACTOR_SHAPES + SIGNED_SHAPES
# Shapes that use no Barri term: AS2 + data-integrity only (DESIGN.md §4, VOCABULARY.md).
PLAIN_SHAPES = ("support", "undo-support", "comment-vote", "undo-comment-vote")
KEY_STEMS = {"actor-person": "ana", "actor-group": "association"} | {
    "actor-application": "instance",
    "actor-service": "aggregator",
}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TIME_KEYS = frozenset(
    "published updated deleted startTime endTime answeredAt closedAt asOf created".split()
)


def load(shape: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{shape}.json").read_text(encoding="utf-8"))
    return data


def barri_inline() -> dict[str, Any]:
    ctx: dict[str, Any] = json.loads((CONTEXTS_DIR / "barri-v1.jsonld").read_text())["@context"]
    return ctx


def bare(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document without what the script adds (@context, proof)."""
    return {k: v for k, v in document.items() if k not in ("@context", "proof")}


def actor_fetcher() -> Any:
    """An in-memory ActorFetcher backed by the example actor documents."""
    actors = {load(shape)["id"]: load(shape) for shape in ACTOR_SHAPES}
    fetched: list[tuple[str, bool]] = []

    async def fetch(url: str, refresh: bool) -> Mapping[str, Any]:
        fetched.append((url, refresh))
        return copy.deepcopy(actors[url])

    fetch.fetched = fetched  # type: ignore[attr-defined]
    return fetch


def owner_of(shape: str) -> str | None:
    # A Tombstone names no owner; its verifier knows the deleted object's author.
    return ANA if shape == "tombstone" else None


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every JSON object in the tree; contexts are not descended."""
    if isinstance(node, list):
        for item in node:
            yield from walk(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            if key != "@context":
                yield from walk(value)


# --- (5) one file per shape, and the sources they come from -----------------------------------


def test_one_example_and_one_template_per_shape() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.json")) == sorted(SHAPES)
    assert sorted(p.stem for p in TEMPLATES.glob("*.json")) == sorted(SHAPES)
    assert make_examples.SHAPES == SHAPES


@pytest.mark.parametrize("shape", SHAPES)
def test_templates_are_the_examples_without_context_and_proof(shape: str) -> None:
    template = json.loads((TEMPLATES / f"{shape}.json").read_text(encoding="utf-8"))
    assert "@context" not in template and "proof" not in template
    example = bare(load(shape))
    if shape in ACTOR_SHAPES:
        example = {k: v for k, v in example.items() if k not in ("publicKey", "assertionMethod")}
    elif shape == "announce":
        template["object"] = bare(template["object"])
        example["object"] = bare(example["object"])
    assert example == template


# --- (1) the exact inline context, never a context URL of ours --------------------------------


def _contexts(node: Any) -> Iterator[tuple[Any, Any]]:
    """(the node, its own @context) for every JSON object in the tree that has one."""
    if isinstance(node, list):
        for item in node:
            yield from _contexts(item)
    elif isinstance(node, dict):
        if "@context" in node:
            yield node, node["@context"]
        for key, value in node.items():
            if key != "@context":
                yield from _contexts(value)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s not in (*PLAIN_SHAPES, "announce")])
def test_context_is_the_standard_urls_plus_the_exact_inline_object(shape: str) -> None:
    document = load(shape)
    expected = [*ACTOR_CONTEXT, barri_inline()] if shape in ACTOR_SHAPES else [AS2, DI_V2]
    if shape not in ACTOR_SHAPES:
        expected.append(barri_inline())
    assert document["@context"] == expected
    assert document["@context"][-1] == barri_inline()
    for _node, context in _contexts(document):
        assert context == expected  # the proof's copy, the inner activity's own
        urls = [entry for entry in context if isinstance(entry, str)]
        assert not any("barri" in url for url in urls), urls


@pytest.mark.parametrize("shape", PLAIN_SHAPES)
def test_a_shape_without_barri_terms_carries_as2_and_data_integrity_only(shape: str) -> None:
    document = load(shape)
    # The document, the embedded Like/vote (none: it is read in the Undo's) and the proof.
    contexts = [context for _node, context in _contexts(document)]
    assert contexts == [[AS2, DI_V2], [AS2, DI_V2]]
    # Every term it uses is AS2's or the proof's: none of ours would be defined here.
    ours = set(barri_inline()) - {"barri", "xsd"}
    assert not ours & {key for key, _ in walk(document)}


def test_the_announce_is_plain_around_an_activity_that_keeps_its_own_context() -> None:
    document = load("announce")
    contexts = [context for _node, context in _contexts(document)]
    # The Announce and its proof; the Create{Proposal} and its proof keep the inline object.
    assert contexts.count([AS2, DI_V2]) == 2
    assert contexts.count([AS2, DI_V2, barri_inline()]) == 2
    assert document["object"]["@context"] == [AS2, DI_V2, barri_inline()]
    assert document["proof"]["@context"] == [AS2, DI_V2]
    # Was 22,814 bytes with the inline object in the Announce's @context and its proof's.
    assert len((EXAMPLES / "announce.json").read_bytes()) < 14_000


def test_plain_shapes_are_a_fraction_of_the_size() -> None:
    # Was 10,205 bytes with the 3 KB inline object in the @context and its copy in the proof.
    assert len((EXAMPLES / "support.json").read_bytes()) < 1_500
    for shape in PLAIN_SHAPES:
        assert len((EXAMPLES / f"{shape}.json").read_bytes()) < 2_000, shape
        assert json.dumps(barri_inline()) not in json.dumps(load(shape))


# --- (2) the inbound JSON-LD rules ------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_example_passes_check_document(shape: str) -> None:
    check_document(load(shape))


@pytest.mark.parametrize("shape", SHAPES)
def test_timestamps_are_rfc3339_utc_seconds(shape: str) -> None:
    stamps = [value for key, value in walk(load(shape)) if key in TIME_KEYS]
    assert stamps
    assert all(isinstance(s, str) and RFC3339_Z.match(s) for s in stamps), stamps


# --- (3) proofs ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SIGNED_SHAPES)
async def test_proof_verifies_with_the_example_actor(shape: str) -> None:
    document = load(shape)
    fetch = actor_fetcher()
    verified = await verify_document(document, fetch, owner=owner_of(shape))
    expected_owner = owner_of(shape) or document.get("actor") or document.get("attributedTo")
    assert verified.controller == expected_owner
    assert verified.verification_method == ed25519_key_id(expected_owner)
    assert verified.created == document["proof"]["created"]
    assert document["proof"]["created"] == document.get("published", document.get("deleted"))
    assert fetch.fetched == [(expected_owner, False)]


def _flip(text: str) -> str:
    """Change one character (the middle one), keeping the string the same length."""
    middle = len(text) // 2
    return text[:middle] + ("X" if text[middle] != "X" else "Y") + text[middle + 1 :]


def _tamper(document: dict[str, Any]) -> str:
    """Flip one character of the first content/name found (else a timestamp); say where."""
    for node in [document, *(v for _, v in walk(document) if isinstance(v, dict))]:
        for key in ("content", "name"):
            if isinstance(node.get(key), str) and node is not document.get("proof"):
                node[key] = _flip(node[key])
                return key
    key = "published" if "published" in document else "deleted"
    document[key] = _flip(document[key])
    return key


@pytest.mark.parametrize("shape", SIGNED_SHAPES)
async def test_flipping_one_character_breaks_the_proof(shape: str) -> None:
    document = load(shape)
    where = _tamper(document)
    with pytest.raises(ProofError) as caught:
        await verify_document(document, actor_fetcher(), owner=owner_of(shape))
    assert caught.value.reason is ProofFailure.SIGNATURE, where


@pytest.mark.parametrize("shape", SIGNED_SHAPES)
async def test_another_actors_key_does_not_verify(shape: str) -> None:
    document = load(shape)
    owner = owner_of(shape) or document.get("actor") or document.get("attributedTo")
    intruder = AGGREGATOR if owner != AGGREGATOR else GROUP
    with pytest.raises(ProofError) as caught:
        await verify_document(document, actor_fetcher(), owner=intruder)
    assert caught.value.reason is ProofFailure.NOT_OWNER


async def test_announce_embeds_the_members_signed_activity_unchanged() -> None:
    announce = load("announce")
    inner = announce["object"]
    assert announce["actor"] == GROUP and inner["actor"] == ANA
    inner_proof = await verify_document(inner, actor_fetcher())
    outer_proof = await verify_document(announce, actor_fetcher())
    assert (inner_proof.controller, outer_proof.controller) == (ANA, GROUP)
    # The inner Create is the initial proposal; the standalone proposal is the answered one.
    assert inner["object"]["proposalState"] == "notAnswered"
    assert inner["object"]["id"] == load("proposal")["id"]
    # Tampering with the proposal inside breaks both proofs.
    inner["object"]["content"] = _flip(inner["object"]["content"])
    for document in (inner, announce):
        with pytest.raises(ProofError) as caught:
            await verify_document(document, actor_fetcher())
        assert caught.value.reason is ProofFailure.SIGNATURE


@pytest.mark.parametrize("shape", ACTOR_SHAPES)
def test_actor_documents_are_unsigned_and_list_the_fixed_keys(shape: str) -> None:
    actor = load(shape)
    assert "proof" not in actor  # what actor_document() serves; see VOCABULARY.md
    ed = private_key_from_pem((KEYS / f"{KEY_STEMS[shape]}.ed25519.pem").read_bytes())
    rsa = private_key_from_pem((KEYS / f"{KEY_STEMS[shape]}.rsa.pem").read_bytes())
    assert isinstance(ed, Ed25519PrivateKey) and isinstance(rsa, RSAPrivateKey)
    assert rsa.key_size == 2048
    keys = {key.key_id: key.public_key for key in actor_keys(actor)}
    assert keys == {
        main_key_id(actor["id"]): rsa.public_key(),
        ed25519_key_id(actor["id"]): ed.public_key(),
    }


def test_key_files_say_test_only() -> None:
    pems = sorted(KEYS.glob("*.pem"))
    assert len(pems) == 8
    for pem in pems:
        assert pem.read_text().startswith("TEST ONLY"), pem.name
    assert "TEST ONLY" in (KEYS / "README.md").read_text()


# --- (4) regenerable byte for byte ------------------------------------------------------------


def test_make_examples_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "schemas.make_examples", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_mode_reports_a_changed_missing_or_extra_file(tmp_path: Path) -> None:
    rendered = {f"{s}.json": make_examples.render(d) for s, d in make_examples.build_all().items()}
    for name, data in rendered.items():
        (tmp_path / name).write_bytes(data)
    assert make_examples._stale(rendered, tmp_path) == []
    tally = tmp_path / "tally.json"
    tally.write_bytes(tally.read_bytes().replace(b"67 suports", b"68 suports"))
    (tmp_path / "support.json").unlink()
    (tmp_path / "vote.json").write_text("{}")
    assert make_examples._stale(rendered, tmp_path) == ["support.json", "tally.json", "vote.json"]


def test_build_is_deterministic() -> None:
    assert make_examples.build_all() == make_examples.build_all()


# --- the domain rules the examples illustrate ------------------------------------------------


def test_tally_inputs_digest_and_counts_are_consistent() -> None:
    tally = load("tally")
    ids = (TEMPLATES / "tally-inputs.txt").read_text().splitlines()
    assert len(ids) == len(set(ids)) == tally["inputsCount"]
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).digest()
    assert tally["inputsDigest"] == "sha-256=:" + base64.b64encode(digest).decode() + ":"
    assert load("support")["id"] not in ids  # ana undid her support before asOf
    assert 0 < tally["participants"] <= tally["inputsCount"]
    totals = {(t["territoryKind"], t["territoryCode"]): t["supports"] for t in tally["totals"]}
    assert totals[("city", "08019")] == sum(r["supports"] for r in tally["results"])
    assert totals[("city", "08019")] == tally["inputsCount"] == totals[("district", "06")]
    for result in tally["results"]:
        counts = [c for c in result["byTerritory"] if c["territoryKind"] == "neighbourhood"]
        assert sum(c["supports"] for c in counts) == result["supports"]
    for code in ("31", "32"):
        by_result = [c for r in tally["results"] for c in r["byTerritory"]]
        assert totals[("neighbourhood", code)] == sum(
            c["supports"] for c in by_result if c["territoryCode"] == code
        )


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_process_phases_are_ordered_and_frame_the_examples() -> None:
    proposals, supports, results = load("process")["phases"]
    for earlier, later in ((proposals, supports), (supports, results)):
        assert _when(earlier["endTime"]) <= _when(later["startTime"])
    for phase in (proposals, supports, results):
        assert _when(phase["startTime"]) < _when(phase["endTime"])
    assert proposals["allowsProposals"] and supports["allowsSupports"]
    assert not results["allowsSupports"] and not supports["allowsProposals"]
    published = _when(load("proposal")["published"])
    assert _when(proposals["startTime"]) <= published < _when(proposals["endTime"])
    for shape in ("support", "undo-support"):
        when = _when(load(shape)["published"])
        assert _when(supports["startTime"]) <= when < _when(supports["endTime"])
    for shape, allows in (("comment", "allowsComments"), ("debate", "allowsDebates")):
        when = _when(load(shape)["published"])
        open_phases = [p for p in (proposals, supports, results) if p[allows]]
        assert any(_when(p["startTime"]) <= when < _when(p["endTime"]) for p in open_phases)


def test_support_is_private_and_its_undo_embeds_it() -> None:
    support, undo = load("support"), load("undo-support")
    assert support["to"] == [GROUP, AGGREGATOR] and "cc" not in support
    assert PUBLIC not in json.dumps(support) and PUBLIC not in json.dumps(undo)
    assert undo["to"] == support["to"] and undo["actor"] == support["actor"] == ANA
    assert undo["object"] == bare(support)
    assert support["object"] == load("proposal")["id"]


def test_official_answer_is_the_groups_update_of_the_proposal() -> None:
    update, proposal = load("official-answer"), load("proposal")
    assert update["actor"] == proposal["audience"] == GROUP
    assert update["object"] == bare(proposal)
    assert proposal["proposalState"] in ("evaluating", "accepted", "rejected")
    assert proposal["attributedTo"] == ANA  # the Group answers; the author still owns it
    assert set(proposal["officialAnswerMap"]) == {"ca", "es", "en"}


def test_comment_is_a_depth_two_reply_in_favour() -> None:
    comment = load("comment")
    assert (comment["depth"], comment["alignment"]) == (2, "inFavor")
    assert comment["context"] == load("proposal")["context"]
    vote = load("comment-vote")
    assert vote["object"] == comment["inReplyTo"] and vote["to"] == [PUBLIC]


def test_delete_carries_the_tombstone_served_afterwards() -> None:
    delete, tombstone = load("delete"), load("tombstone")
    assert delete["object"] == bare(tombstone)
    assert tombstone["formerType"] == "Note"
