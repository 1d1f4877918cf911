"""The declarations loader refuses what YAML and the file system would otherwise let through silently: a key
given twice in one mapping, a file that is not UTF-8, and an ``html_file`` outside the declarations' folder."""

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from esp_warehouse.config import ConfigError, load_declarations, template_path
from pipelines import PIPELINES_DIR

SHIPPED = PIPELINES_DIR / "syncs.yaml"
TEMPLATE = "templates/welcome.html.j2"  # shipped with the declarations

SYNC = """\
syncs:
  - name: sp_eu
    provider: sendpulse
    book: EU
    source: {view: segment_active_eu}
    mode: upsert
"""
CAMPAIGN = f"""\
campaigns:
  - name: welcome
    provider: sendpulse
    sync: sp_eu
    subject: Welcome
    sender_name: Demo
    sender_email: news@demo.example
    html_file: {TEMPLATE}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "syncs.yaml") -> Path:
    """A declarations file in ``tmp_path``, with the shipped templates beside it (templates are read from the
    declarations' own folder)."""
    if not (tmp_path / "templates").exists():
        shutil.copytree(PIPELINES_DIR / "templates", tmp_path / "templates")
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    err = info.value
    assert str(path) in str(err)
    # a plain message: nothing chained for a traceback to show
    assert err.__cause__ is None
    assert err.__suppress_context__ or err.__context__ is None
    return err


def shipped() -> dict[str, Any]:
    data = yaml.safe_load(SHIPPED.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


# -- duplicate keys -------------------------------------------------------------------------------------------------


def test_the_base_declarations_load(tmp_path):
    decls = load_declarations(write(tmp_path, SYNC + CAMPAIGN))
    assert decls.syncs[0].mode == "upsert"
    assert decls.campaigns[0].html_path() == (tmp_path / TEMPLATE).resolve()  # beside the declarations
    assert load_declarations(SHIPPED).syncs  # and the shipped file


@pytest.mark.parametrize(
    ("text", "key", "first", "second"),
    [
        pytest.param(SYNC + CAMPAIGN + "syncs: []\n", "syncs", 1, 15, id="top-level"),
        pytest.param(SYNC + "    mode: mirror\n" + CAMPAIGN, "mode", 6, 7, id="in-a-sync"),
        pytest.param(SYNC + CAMPAIGN + "    subject: Hello again\n", "subject", 11, 15, id="in-a-campaign"),
        pytest.param(
            SYNC.replace("{view: segment_active_eu}", "{view: a, view: b}") + CAMPAIGN, "view", 5, 5, id="flow-mapping"
        ),
        pytest.param(SYNC + CAMPAIGN + '    "subject": Hello again\n', "subject", 11, 15, id="quoted-spelling"),
    ],
)
def test_a_key_given_twice_is_an_error_naming_the_file_the_key_and_both_lines(tmp_path, text, key, first, second):
    err = refused(write(tmp_path, text))
    message = str(err)
    assert repr(key) in message
    assert f"line {second}" in message
    assert f"line {first}" in message


def test_mirror_after_upsert_does_not_silently_win(tmp_path):
    text = SYNC + "    max_remove_pct: 10\n    mode: mirror\n"
    err = refused(write(tmp_path, text))
    assert "duplicate key 'mode'" in str(err)


def test_merge_keys_still_work_and_explicit_keys_override_them(tmp_path):
    text = """\
syncs:
  - &base
    name: sp_eu
    provider: sendpulse
    book: EU
    source: {view: segment_active_eu}
    mode: upsert
    max_remove_pct: 20
  - <<: *base
    name: sp_us
    book: US
    source: {view: segment_active_us}
    mode: mirror
  - <<: [*base]
    name: sp_uk
    book: UK
"""
    decls = load_declarations(write(tmp_path, text))
    assert [(s.name, s.book, s.mode, s.max_remove_pct) for s in decls.syncs] == [
        ("sp_eu", "EU", "upsert", 20),
        ("sp_us", "US", "mirror", 20),
        ("sp_uk", "UK", "upsert", 20),
    ]


# -- encoding -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line"),
    [
        pytest.param((SYNC + CAMPAIGN.replace("Welcome", "Café")).encode("latin-1"), 11, id="latin-1"),
        pytest.param((SYNC + CAMPAIGN).encode("utf-16"), 1, id="utf-16"),
        pytest.param((SYNC + CAMPAIGN).encode("utf-16-le"), 1, id="utf-16-le-no-bom"),
        pytest.param(b"\xff\xfe", 1, id="bom-only"),
    ],
)
def test_a_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path, data, line):
    path = write(tmp_path, data)
    err = refused(path)
    assert not isinstance(err, UnicodeDecodeError)
    assert "UTF-8" in str(err)
    assert f"line {line}" in str(err)


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    path = write(tmp_path, (SYNC + CAMPAIGN.replace("Welcome", "Café")).encode("utf-8-sig"))
    assert load_declarations(path).campaigns[0].subject == "Café"


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path):
    refused(tmp_path / "nope.yaml")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    refused(folder)


# -- html_file ------------------------------------------------------------------------------------------------------

OUTSIDE = [
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param(str(PIPELINES_DIR / TEMPLATE), id="absolute-inside"),
    pytest.param("../../../../etc/passwd", id="dotdot"),
    pytest.param("templates/../../pyproject.toml", id="a/../../x"),
    pytest.param("templates/../" + TEMPLATE, id="dotdot-back-inside"),
    pytest.param("..\\..\\etc\\passwd", id="backslash"),
    pytest.param("templates\\welcome.html.j2", id="backslash-inside"),
    pytest.param("~/x.html", id="home"),
    pytest.param("~root/.bashrc", id="home-of-user"),
    pytest.param("C:/Windows/win.ini", id="drive"),
    pytest.param("//server/share/x.html", id="unc"),
    pytest.param("templates/\x00welcome.html.j2", id="nul"),
]


@pytest.mark.parametrize("html_file", OUTSIDE)
def test_html_file_outside_the_declarations_folder_is_an_error_naming_the_entry(tmp_path, html_file):
    data = shipped()
    data["campaigns"][1]["html_file"] = html_file
    path = write(tmp_path, yaml.safe_dump(data))
    err = refused(path)
    name = data["campaigns"][1]["name"]
    assert f"campaigns[1] ({name})" in str(err)
    assert "html_file" in str(err)


@pytest.mark.parametrize("html_file", OUTSIDE)
def test_template_path_refuses_paths_leaving_the_root(tmp_path, html_file):
    root = tmp_path / "decls"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "welcome.html.j2").write_text("hi")
    with pytest.raises(ValueError, match="html_file"):
        template_path(html_file, root=root)


def test_a_symlink_inside_the_folder_that_points_outside_is_refused(tmp_path):
    root = tmp_path / "decls"
    (root / "templates").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not a template")
    (root / "templates" / "evil.html").symlink_to(secret)
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    (root / "templates" / "up").symlink_to("../..", target_is_directory=True)
    for name in ("templates/evil.html", "linked/secret.txt", "templates/up/secret.txt"):
        with pytest.raises(ValueError, match="outside"):
            template_path(name, root=root)


def test_templates_nested_inside_the_folder_work(tmp_path):
    root = tmp_path / "decls"
    nested = root / "templates" / "emails" / "eu"
    nested.mkdir(parents=True)
    (nested / "welcome.html").write_text("<p>hi</p>")
    (root / "templates" / "current.html").symlink_to("emails/eu/welcome.html")  # a link that stays inside
    expected = (nested / "welcome.html").resolve()
    assert template_path("templates/emails/eu/welcome.html", root=root) == expected
    assert template_path("./templates/emails/eu/welcome.html", root=root) == expected
    assert template_path("templates/current.html", root=root) == expected
    # the resolved root is compared, so a root reached through a symlink works too
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert template_path("templates/emails/eu/welcome.html", root=alias) == expected


def test_a_nested_shipped_template_loads_through_the_declarations(tmp_path):
    data = shipped()
    data["campaigns"][0]["html_file"] = "./" + TEMPLATE
    decls = load_declarations(write(tmp_path, yaml.safe_dump(data)))
    html = decls.campaigns[0].html_path()
    assert html is not None
    assert html.is_file()
    assert html.is_relative_to(tmp_path.resolve())  # the declarations' own folder, not the package's
    assert os.path.samefile(html, tmp_path / TEMPLATE)


def test_the_deployment_names_its_declarations_file(tmp_path, monkeypatch):
    """ESP_DECLARATIONS names a file outside the package; its templates are read beside it."""
    data = shipped()
    data["campaigns"] = [c for c in data["campaigns"] if c["provider"] == "sendpulse"]
    data["campaigns"][0]["html_file"] = "mail/hello.html"
    (tmp_path / "deploy" / "mail").mkdir(parents=True)
    (tmp_path / "deploy" / "mail" / "hello.html").write_text("<p>Hello {{ first_name }}</p>", encoding="utf-8")
    path = tmp_path / "deploy" / "team.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("ESP_DECLARATIONS", str(path))
    decls = load_declarations()
    html = decls.campaigns[0].html_path()
    assert html is not None
    assert os.path.samefile(html, tmp_path / "deploy" / "mail" / "hello.html")
    monkeypatch.setenv("ESP_DECLARATIONS", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: file not found"):
        load_declarations()
