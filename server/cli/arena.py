"""Maintainers' arena commands: pairing weights, paused models (issue 11, items 5 and 6)."""

import typer

arena_app = typer.Typer(help="The arena: pairing weights, paused models.", no_args_is_help=True)
