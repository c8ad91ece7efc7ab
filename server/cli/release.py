"""Releasing arena data: `libra export votes` and `libra replay` (issue 11, item 10)."""

import typer

export_app = typer.Typer(help="Export arena data with personal data removed.", no_args_is_help=True)
