"""``ivr models``: the Vosk model packs."""

from __future__ import annotations

import typer

from ivr.cli.common import app, fail

models_app = typer.Typer(help="Vosk model packs.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Model packs available on this machine."""
    from asr import default_registry

    for pack in default_registry().packs():
        typer.echo(f"{pack.language:<6} {pack.dialect or '-':<10} {pack.path}")


@models_app.command("pull")
def models_pull(language: str) -> None:
    """Download a small Vosk model for LANGUAGE with vosk's own downloader (needs internet)."""
    from asr import ModelMissing, pull

    try:
        path = pull(language)
    except ModelMissing as exc:
        fail(str(exc))
    typer.echo(f"model for {language} in {path}")
