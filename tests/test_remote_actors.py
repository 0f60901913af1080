"""The instance's stored remote actors: served while younger than the TTL, purged after it,
kept without the @context every actor of a server repeats."""

from __future__ import annotations

from pathlib import Path

from federation.store.migrations import INSTANCE_MIGRATIONS
from federation.store.remote_actors import PURGE_EVERY, RemoteActors
from federation.store.sqlite import open_database


async def test_copies_are_served_under_the_ttl_and_purged_past_it(tmp_path: Path) -> None:
    now = [1000.0]
    db = await open_database(tmp_path / "i.sqlite3", migrations=INSTANCE_MIGRATIONS)
    try:
        store = RemoteActors(db, ttl=60.0, clock=lambda: now[0])
        await store.keep("https://a.example/users/ana", {"id": "https://a.example/users/ana"})
        now[0] += 30
        found = await store.stored("https://a.example/users/ana")
        assert found == ({"id": "https://a.example/users/ana"}, 30.0)
        assert await store.stored("https://a.example/users/nobody") is None
        now[0] += 30
        assert await store.stored("https://a.example/users/ana") is None  # at the TTL: stale
        # Minted actors fetched later do not pile up: stale rows go as writes go.
        now[0] += 1
        for n in range(PURGE_EVERY - 1):
            await store.keep(f"https://evil.example/u/{n}", {"id": f"https://evil.example/u/{n}"})
        rows = await db.execute_fetchall("SELECT id FROM remote_actors")
        assert "https://a.example/users/ana" not in {r[0] for r in rows}
        assert len(list(rows)) == PURGE_EVERY - 1
    finally:
        await db.close()


async def test_a_copy_keeps_everything_but_the_context(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "i.sqlite3", migrations=INSTANCE_MIGRATIONS)
    try:
        store = RemoteActors(db, ttl=60.0, clock=lambda: 1000.0)
        actor = {
            "@context": ["https://www.w3.org/ns/activitystreams", {"barri": "https://w3id.org/"}],
            "id": "https://a.example/users/ana",
            "type": "Person",
            "assertionMethod": [{"id": "https://a.example/users/ana#ed25519-key"}],
        }
        await store.keep(actor["id"], actor)
        found = await store.stored(actor["id"])
        assert found == ({k: v for k, v in actor.items() if k != "@context"}, 0.0)
    finally:
        await db.close()
