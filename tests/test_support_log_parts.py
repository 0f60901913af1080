"""The parts of an instance's ``/support-log`` an aggregator asks for: ``authors=local`` and
``exclude_origins`` (federation.instance.readsupports), on real instances over loopback.

The city's instance owns the process; a Gràcia resident and a Raval resident support a
proposal in it, and the Raval one withdraws: the city logs all three items, each
neighbourhood its own resident's.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from activitypub.origin import origin_of
from federation.store.supportlog import MAX_EXCLUDED
from tests.test_instance_federation import City, city, of_type
from tests.test_readside import signed_get, signed_walk

__all__ = ["city"]  # the fixture, imported from test_instance_federation


async def _items(city: City, url: str) -> list[tuple[str, str]]:
    """Every (type, actor) a part lists, page by page (:func:`signed_walk`)."""
    _, items = await signed_walk(url, city.mastodon.keys["instance"])
    return [(item["type"], item["actor"]) for item in items]


def _part(origin: str, **query: str) -> str:
    return origin + "/support-log" + ("?" + urlencode(query) if query else "")


async def _supported(city: City) -> tuple[str, str, str]:
    """pau (Gràcia) and rita (Raval) support; rita withdraws. The three instances' origins."""
    c, a, b = city.city, city.gracia, city.raval
    ana = await a.resident("ana", "31")
    pau = await a.resident("pau", "31")
    proposal = await a.deliberation.create_proposal(
        ana, city.process.id, name="Fonts", body_markdown="Aigua."
    )
    await a.deliberation.support(pau, proposal.id)
    await c.observer.wait(of_type("Like", actor=a.actor("pau")))
    await b.observer.wait(of_type("Announce", actor=c.group))
    rita = await b.resident("rita", "01")
    await b.deliberation.support(rita, proposal.id)
    await c.observer.wait(of_type("Like", actor=b.actor("rita")))
    await b.deliberation.withdraw_support(rita, proposal.id)
    await c.observer.wait(of_type("Undo", actor=b.actor("rita")))
    return c.config.base_url, a.config.base_url, b.config.base_url


async def test_each_part_lists_what_it_names_and_its_pages_keep_the_query(city: City) -> None:
    city_origin, gracia, raval = await _supported(city)
    pau, rita = city.gracia.actor("pau"), city.raval.actor("rita")
    everything = [("Undo", rita), ("Like", rita), ("Like", pau)]
    assert await _items(city, _part(city_origin)) == everything
    # The city has no resident of its own here: its own part is empty.
    assert await _items(city, _part(city_origin, authors="local")) == []
    # Each neighbourhood's own part: its resident's items, given in the city's process.
    assert await _items(city, _part(raval, authors="local")) == [("Undo", rita), ("Like", rita)]
    assert await _items(city, _part(gracia, authors="local")) == [("Like", pau)]
    # The city's log without Raval's residents; without both neighbourhoods': nothing left.
    assert await _items(city, _part(city_origin, exclude_origins=raval)) == [("Like", pau)]
    both = ",".join(sorted([raval, gracia]))
    assert await _items(city, _part(city_origin, exclude_origins=both)) == []
    # A Mastodon origin left out changes nothing; a trailing slash is the same origin.
    other = city.mastodon.actor_id("instance")
    mastodon = str(origin_of(other))
    assert await _items(city, _part(city_origin, exclude_origins=mastodon + "/")) == everything
    # Both filters at once: a neighbourhood's own part without itself is empty.
    assert await _items(city, _part(raval, authors="local", exclude_origins=raval)) == []


async def test_the_same_signed_items_as_the_whole_log(city: City) -> None:
    """A part's items are the stored signed documents, byte for byte what the log serves."""
    city_origin, _gracia, raval = await _supported(city)
    keys = city.mastodon.keys["instance"]
    _, whole = await signed_get(_part(city_origin) + "?page=true", keys)
    _, part = await signed_get(_part(city_origin, exclude_origins=raval) + "&page=true", keys)
    assert part["orderedItems"] == [whole["orderedItems"][2]]
    assert "proof" in part["orderedItems"][0]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"authors": "all"}, "authors must be 'local'"),
        ({"exclude_origins": "not-a-url"}, "exclude_origins"),
        ({"exclude_origins": "http://127.0.0.1:9/path"}, "not a normalised origin"),
        ({"exclude_origins": "HTTP://127.0.0.1:9"}, "not a normalised origin"),
        (
            {"exclude_origins": ",".join(f"http://h{i}.t" for i in range(MAX_EXCLUDED + 1))},
            f"at most {MAX_EXCLUDED}",
        ),
    ],
)
async def test_a_bad_part_is_a_problem(city: City, query: dict[str, str], detail: str) -> None:
    status, problem = await signed_get(
        _part(city.city.config.base_url, **query), city.mastodon.keys["instance"]
    )
    assert status == 400 and detail in problem["detail"], problem


async def test_a_part_is_as_private_as_the_log(city: City) -> None:
    """Only an aggregator the instance reports to reads a part (authorised, then parsed)."""
    url = _part(city.raval.config.base_url, authors="bad")
    status, refused = await signed_get(url, city.mastodon.keys["alice"])
    assert (status, refused["reason"]) == (403, "supports_private")
