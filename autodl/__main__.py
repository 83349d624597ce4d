from autodl.cli import run

run()
