"""What every `fti` command shares: its consoles, the state-directory option, the one-line error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape as escape_markup

# Tables stay readable when the output is a pipe or a CI log (rich would assume 80 columns).
_WIDTH = None if sys.stdout.isatty() else 120
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)

# One default for every command and for `make demo` (its STATE_DIR), so the README's commands
# after the demo read what the demo wrote.
DEFAULT_STATE_DIR = Path(".fti/local")
STATE_DIR_OPTION = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where stores and state live.", envvar="FTI_STATE_DIR")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape_markup(message)}", highlight=False)
    raise typer.Exit(code)
