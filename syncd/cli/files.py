"""`syncd files`: placeholder replaced by its implementation."""

import click


@click.group()
def files() -> None:
    """Not implemented yet."""
