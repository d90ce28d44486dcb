"""``tierroute ask`` arguments: a bad ``--max-tokens`` is a usage error that names the option."""

from __future__ import annotations

import argparse

import pytest

from tierroute_tools.cli import build_parser, main
from tierroute_tools.commands.ask import TLS_ERROR_EXIT_CODE, run


@pytest.mark.parametrize("value", ["-1", "0", "many", "4294967296"])
def test_bad_max_tokens_names_the_option_and_exits_with_the_usage_code(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["ask", "--max-tokens", value, "hello"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-tokens" in err
    assert "Value out of range" not in err


def test_usage_and_tls_errors_have_different_exit_codes(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert TLS_ERROR_EXIT_CODE != 2
    args = build_parser().parse_args(
        ["ask", "--ca-file", "/nonexistent/ca.pem", "--timeout", "2", "hello"]
    )
    assert isinstance(args, argparse.Namespace)
    assert run(args) == TLS_ERROR_EXIT_CODE
    assert "error: TLS:" in capsys.readouterr().err


def test_a_valid_max_tokens_parses() -> None:
    args = build_parser().parse_args(["ask", "--max-tokens", "64", "hello"])
    assert args.max_tokens == 64
