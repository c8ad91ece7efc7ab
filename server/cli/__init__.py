"""The `libra` command line."""

import typer

from server.cli import admin, arena, backup, data, evaluate, release, running

app = typer.Typer(help="Libra Arena: rank language models on capability and safety together.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.command()(running.serve)
app.command()(running.worker)
app.command("serve-model")(running.serve_model)
app.command("eval")(evaluate.eval_)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.models_app, name="models")
app.add_typer(data.data_app, name="data")
app.add_typer(arena.arena_app, name="arena")
app.add_typer(release.export_app, name="export")
app.command()(release.replay)
app.command("replay-draws")(release.replay_draws)
app.command()(backup.backup)
app.command()(backup.restore)


def main() -> None:
    app()
