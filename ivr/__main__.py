from ivr.cli import app

app()
