"""`syncd emulator`: placeholder replaced by its implementation."""

import click


@click.group()
def emulator() -> None:
    """Not implemented yet."""
