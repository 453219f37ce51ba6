"""Registry entries that only a browser can fetch (``manual`` in ``weights/models.json``).

Google Drive answers a script with a web page, never the file. Such an entry must fail at
once, before any network access, saying where to get the file and the exact path to save it
under; ``draggan-widget models`` marks it. The downloader's refusal of an HTML answer, for
URLs not known to need a browser, is tested against a local server in test_registry.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from draggan_widget import load_generator
from draggan_widget.__main__ import main
from draggan_widget.gan import registry
from draggan_widget.gan.registry import DownloadError, get_model, list_models

MANUAL = [m for m in list_models() if m.manual is not None]


def no_network(*args, **kwargs):
    raise AssertionError(f"the network was used: urlopen{args}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, and no network: any urlopen fails the test."""
    monkeypatch.setenv(registry.HOME_ENV, str(tmp_path))
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    return tmp_path


def test_lhq_is_marked_manual_since_its_url_is_a_google_drive_page():
    info = get_model("lhq-256")
    assert info.url.startswith("https://drive.google.com/") and info.url in {m.url for m in MANUAL}
    assert "browser" in info.manual


@pytest.mark.parametrize("info", MANUAL, ids=[m.name for m in MANUAL])
@pytest.mark.parametrize("by", ["name", "url"])
def test_a_manual_entry_says_where_to_save_it_without_the_network(info, by, home):
    with pytest.raises(DownloadError) as err:
        load_generator(info.name if by == "name" else info.url)
    message = str(err.value)
    assert "by hand" in message and info.url in message and info.manual in message
    assert f"save the file as {(home / info.filename).resolve()} " in message
    assert list(home.iterdir()) == []  # no part file, no record


@pytest.mark.parametrize("info", MANUAL, ids=[m.name for m in MANUAL])
def test_a_manual_entry_is_refused_the_same_way_where_downloads_are_off(info, home):
    with pytest.raises(DownloadError, match="by hand"):
        registry.download_model(info.name, download=False)


def test_models_marks_manual_entries_and_says_what_to_do(home, capsys):
    info = MANUAL[0]
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in lines if line.startswith(f"{info.name} "))
    assert row[5] == "manual"  # the 'local' column
    note = next(line for line in lines if line.startswith(f"{info.name} (manual)"))
    assert info.url in note and str(home / info.filename) in note
    (home / info.filename).write_bytes(b"downloaded by hand")
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line.split() for line in lines if line.startswith(f"{info.name} "))[5] == "cached"
    assert not any("(manual)" in line for line in lines)


@pytest.mark.parametrize("manual", ["", "  ", 3])
def test_a_manual_field_without_steps_is_a_packaging_error(manual, tmp_path, monkeypatch):
    entry = {"name": "x", "format": "nvidia_pkl", "url": "https://example.org/x.pkl"}
    (tmp_path / "models.json").write_text(json.dumps({"models": [{**entry, "manual": manual}]}))
    monkeypatch.setattr(registry, "_weights_file", lambda name: tmp_path / name)
    with pytest.raises(ValueError, match="manual"):
        list_models()
