"""``barri admin process follow``: a neighbourhood joins the city's process from the CLI.

Two real ``barri serve`` processes on loopback (the city owning a process, and Gràcia). The
command runs beside Gràcia's server: it caches the process and Gràcia's Group follows the
city's Group; the Accept that comes back is handled by Gràcia's server (the command claims no
inbox row), so the follow ends accepted. Unknown ids and the instance's own processes are
one-line answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.test_backup import barri, draft, ok, serving

AS2 = "application/activity+json"


async def instance(tmp_path: Path, name: str, port: int, *extra: str) -> Path:
    config = tmp_path / name / "barri.toml"
    await ok("init", "instance", "--dir", str(config.parent),
             "--base-url", f"http://127.0.0.1:{port}", "--name", f"AV {name}", "--group", name,
             "--allow-loopback", "--listen", f"127.0.0.1:{port}", *extra)  # fmt: skip
    return config


async def test_a_neighbourhood_joins_the_city_process(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> None:
    city_port, gracia_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    city = await instance(tmp_path, "city", city_port, "--territory", "08019",
                          "--territory-kind", "city")  # fmt: skip
    gracia = await instance(tmp_path, "gracia", gracia_port, "--territory", "31",
                            "--district", "06")  # fmt: skip
    (tmp_path / "process.json").write_text(json.dumps(draft()))
    created = await ok("admin", "--config", str(city), "process", "create",
                       "--file", str(tmp_path / "process.json"))  # fmt: skip
    process = created.strip().splitlines()[-1]
    city_group = f"http://127.0.0.1:{city_port}/groups/city"
    async with (
        serving(city, f"http://127.0.0.1:{city_port}"),
        serving(gracia, f"http://127.0.0.1:{gracia_port}"),
    ):
        out = await ok("admin", "--config", str(gracia), "process", "follow", process)
        assert out.splitlines() == [
            f"joined 'Pressupost del Raval': residents can take part; following {city_group}"
            " (accepted)"
        ]
        listed = await ok("admin", "--config", str(gracia), "process", "list")
        assert process in listed and city_group in listed
        again = await ok("admin", "--config", str(gracia), "process", "follow", process)
        assert again.endswith("(accepted)\n")  # following again changes nothing
        async with aiohttp.ClientSession() as session:
            followers = city_group + "/followers"
            async with session.get(followers, headers={"Accept": AS2}) as response:
                assert (await response.json())["totalItems"] == 1
            page = f"http://127.0.0.1:{gracia_port}/remote?id={process}"
            async with session.get(page, headers={"Accept": "text/html"}) as response:
                assert response.status == 200
        own = await ok("admin", "--config", str(city), "process", "follow", process)
        assert own == "'Pressupost del Raval' is this instance's own process; nothing to follow\n"
        missing = process.rsplit("/", 1)[0] + "/0000"
        code, _out, err = await barri(
            "admin", "--config", str(gracia), "process", "follow", missing
        )
        assert code == 1 and len(err.splitlines()) == 1
        assert err.startswith(f"barri: error: cannot follow {missing}: ")
