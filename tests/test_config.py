"""barri.toml: the written template reads back the same, env overrides, one-line errors by key."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from federation.config import (
    DEFAULT_LANGUAGES,
    KEYS,
    InstanceConfig,
    load_config,
    parse_config,
    slugify,
)
from federation.config_values import ConfigError
from federation.config_writer import InitOptions, render_instance_config, write_instance_config

SECRET = "s" * 40
OPTIONS = InitOptions(
    base_url="https://Raval.Barri.Example/",
    name="Associació de Veïns del Raval",
    secret=SECRET,
    territory="08019-01",
    district="08019-1",
    report_to=("https://participa.example/actor", "https://region.example/actor"),
    listen="0.0.0.0:8443",
)


def _write(tmp_path: Path, options: InitOptions = OPTIONS) -> Path:
    return write_instance_config(tmp_path / "raval", options)


def _load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> InstanceConfig:
    path = tmp_path / "barri.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=env or {})


def _minimal(**overrides: str) -> str:
    values = {
        "kind": '"instance"',
        "base_url": '"https://raval.example"',
        "name": '"Raval"',
        "secret": f'"{SECRET}"',
        **overrides,
    }
    return "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)


def test_template_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path)
    config = load_config(path, environ={})
    assert config.base_url == "https://raval.barri.example"  # normalised origin, as ids use it
    assert config.name == OPTIONS.name
    assert config.group == "associacio_de_veins_del_raval"
    assert (config.territory, config.territory_kind, config.district) == (
        "08019-01",
        "neighbourhood",
        "08019-1",
    )
    assert config.report_to == OPTIONS.report_to
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 8443)
    assert config.allow_loopback is False
    assert config.edit_window_minutes == 5
    assert config.languages == DEFAULT_LANGUAGES
    assert config.secret == SECRET
    assert config.data_dir == path.parent
    assert config.database == path.parent / "barri.sqlite3"
    assert config.host == "raval.barri.example"
    assert SECRET not in repr(config)


def test_written_file_is_private_and_states_the_normalised_origin(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 'base_url = "https://raval.barri.example"\n' in path.read_text(encoding="utf-8")


def test_template_comments_every_key(tmp_path: Path) -> None:
    lines = render_instance_config(OPTIONS).splitlines()
    assigned = [i for i, line in enumerate(lines) if re.match(r"^#? ?[a-z_]+ = ", line)]
    keys = {re.sub(r"^#? ?", "", lines[i]).split(" = ")[0] for i in assigned}
    assert keys == set(KEYS)
    for i in assigned:
        # Walk up over the block of assignments this one belongs to; a comment must head it.
        j = i - 1
        while j >= 0 and re.match(r"^#? ?[a-z_]+ = ", lines[j]):
            j -= 1
        assert lines[j].startswith("# "), f"no comment above {lines[i]!r}"


def test_optional_keys_are_commented_out_when_not_given(tmp_path: Path) -> None:
    path = write_instance_config(
        tmp_path, InitOptions(base_url="https://a.example", name="A", secret=SECRET)
    )
    text = path.read_text(encoding="utf-8")
    assert '\n# territory = "' in text and '\n# district = "' in text
    config = load_config(path, environ={})
    assert (config.territory, config.district, config.report_to) == (None, None, ())


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + "# hand edit\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists"):
        _write(tmp_path)
    assert path.read_text(encoding="utf-8").endswith("# hand edit\n")
    path.chmod(0o644)
    write_instance_config(tmp_path / "raval", OPTIONS, force=True)
    assert not path.read_text(encoding="utf-8").endswith("# hand edit\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_http_base_url_needs_allow_loopback(tmp_path: Path) -> None:
    http = InitOptions(base_url="http://127.0.0.1:8080", name="Test", secret=SECRET)
    with pytest.raises(ConfigError) as caught:
        write_instance_config(tmp_path, http)
    assert caught.value.key == "base_url"
    assert "allow_loopback" in str(caught.value)
    assert not (tmp_path / "barri.toml").exists()
    loopback = InitOptions(
        base_url="http://127.0.0.1:8080", name="Test", secret=SECRET, allow_loopback=True
    )
    config = load_config(write_instance_config(tmp_path, loopback), environ={})
    assert config.base_url == "http://127.0.0.1:8080"


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "BARRI_LISTEN": "[::1]:9000",
        "BARRI_ALLOW_LOOPBACK": "yes",
        "BARRI_BASE_URL": "http://127.0.0.1:9000",
        "BARRI_REPORT_TO": "http://127.0.0.1:7000/actor, https://city.example/actor",
        "BARRI_LANGUAGES": "es,ca",
        "BARRI_EDIT_WINDOW_MINUTES": "15",
        "BARRI_TERRITORY": "08019-02",
        "BARRI_DATABASE": "other.sqlite3",
        "BARRI_DELIVERY_CONCURRENCY": "150",
        "BARRI_NAME": "",  # empty means unset: the file's value stays
    }
    config = load_config(_write(tmp_path), environ=env)
    assert (config.listen_host, config.listen_port) == ("::1", 9000)
    assert config.allow_loopback is True
    assert config.base_url == "http://127.0.0.1:9000"
    assert config.report_to == ("http://127.0.0.1:7000/actor", "https://city.example/actor")
    assert config.languages == ("es", "ca")
    assert config.edit_window_minutes == 15
    assert config.territory == "08019-02"
    assert config.database.name == "other.sqlite3"
    assert config.delivery_concurrency == 150
    assert config.name == OPTIONS.name


def test_bad_environment_value_names_key_and_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path), environ={"BARRI_LISTEN": "nowhere"})
    message = str(caught.value)
    assert "listen (set by BARRI_LISTEN)" in message
    assert message.startswith(str(tmp_path / "raval" / "barri.toml"))


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("kind", '"aggregator"', "instance"),
        ("base_url", '"https://raval.example/path"', "origin only"),
        ("base_url", '"ftp://raval.example"', "http(s)"),
        ("base_url", "42", "string"),
        ("name", '""', "non-empty"),
        ("group", '"Not A Slug"', "a-z"),
        ("territory", '"bad code!"', "territory code"),
        ("territory_kind", '"province"', "neighbourhood"),
        ("district", '"x y"', "territory code"),
        ("listen", '"127.0.0.1"', "HOST:PORT"),
        ("listen", '"127.0.0.1:70000"', "HOST:PORT"),
        ("allow_loopback", '"maybe"', "true or false"),
        ("report_to", '"https://city.example/actor"', "list"),
        ("report_to", '["http://city.example/actor"]', "https"),
        ("report_to", '["https://city.example/actor#main"]', "fragment"),
        ("edit_window_minutes", "-1", "minutes"),
        ("edit_window_minutes", "true", "minutes"),
        ("edit_window_minutes", '"\u00b2"', "minutes"),  # str.isdigit() says yes, int() no
        ("edit_window_minutes", '"' + "0" * 400 + '"', "minutes"),
        ("languages", "[]", "non-empty"),
        ("languages", '["Catalan"]', "language tag"),
        ("secret", '"short"', "at least 32"),
        ("database", '""', "non-empty"),
        ("delivery_concurrency", "0", "from 1 to 1024"),
        ("delivery_concurrency", "1025", "from 1 to 1024"),
        ("delivery_concurrency", "true", "from 1 to 1024"),
        ("delivery_concurrency", "2.5", "from 1 to 1024"),
        ("delivery_concurrency", '"many"', "from 1 to 1024"),
    ],
)
def test_each_bad_value_names_its_key(tmp_path: Path, key: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_text(tmp_path, _minimal(**{key: value}))
    assert caught.value.key == key
    message = str(caught.value)
    assert f": {key}: " in message and problem in message
    assert "\n" not in message


def test_only_a_neighbourhood_has_a_district(tmp_path: Path) -> None:
    text = _minimal(territory='"08019-1"', territory_kind='"district"', district='"08019-1"')
    with pytest.raises(ConfigError, match="district: is only for a neighbourhood"):
        _load_text(tmp_path, text)
    config = _load_text(tmp_path, _minimal(territory='"08019-1"', territory_kind='"district"'))
    assert (config.territory_kind, config.district) == ("district", None)


@pytest.mark.parametrize("key", ["kind", "base_url", "name", "secret"])
def test_required_keys(tmp_path: Path, key: str) -> None:
    text = "".join(line for line in _minimal().splitlines(True) if not line.startswith(key))
    with pytest.raises(ConfigError, match=f": {key}: is required"):
        _load_text(tmp_path, text)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load_text(tmp_path, _minimal(base_ulr='"https://typo.example"'))
    assert caught.value.key == "base_ulr" and "unknown key" in str(caught.value)


def test_file_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load_text(tmp_path, "base_url = \n")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, environ={})


def test_relative_data_dir_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    config = _load_text(tmp_path, _minimal(data_dir='"data"', database='"x.sqlite3"'))
    assert config.data_dir == tmp_path / "data"
    assert config.database == tmp_path / "data" / "x.sqlite3"
    absolute = _load_text(tmp_path, _minimal(data_dir=f'"{tmp_path / "abs"}"'))
    assert absolute.data_dir == tmp_path / "abs"


def test_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    config = parse_config(_minimal(), tmp_path / "barri.toml", environ={})
    assert config.group == "raval"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8080)
    assert config.territory_kind == "neighbourhood"
    assert config.languages == ("ca", "es", "en")
    assert config.delivery_concurrency == 16


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Associació de Veïns del Raval", "associacio_de_veins_del_raval"), ("!!!", "association")],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
