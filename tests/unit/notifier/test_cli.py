"""The CLI's own checks: a version, and tokens only for the roles the product knows."""

from __future__ import annotations

import pytest

from notifier import __version__
from notifier.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"notifier {__version__}\n"


def test_token_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["token", "amy", "--role", "moderater"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'moderater'" in err and "Traceback" not in err
