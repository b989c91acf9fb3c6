"""The 100,000-file tree, synced once and shared by the memory and rescan benchmarks.

Syncing it costs minutes, so the memory benchmark (whose first sync is the measurement) leaves
it in the context for the rescan; run alone, the rescan builds it with ``syncd sync``. The
tree, the state database and the emulator's data survive between the two, and are deleted by
:func:`discard_synced_tree` (or with the run's scratch root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configs import SyncdSetup, syncd_env, write_syncd_config
from benchmarks.context import BenchContext
from benchmarks.daemon import count_state
from benchmarks.datasets import write_tree
from benchmarks.processes import run_measured
from benchmarks.servers import EmulatorProcess

__all__ = [
    "SyncedTree",
    "discard_synced_tree",
    "make_tree",
    "remember_synced_tree",
    "synced_tree",
]

_KEY = "synced_tree"
#: Uploads in flight for the tree's first sync (the configuration's default).
TREE_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class SyncedTree:
    """A tree of ``files`` files whose state database says every one is uploaded."""

    workdir: Path
    folder: Path
    files: int
    emulator_data: Path

    def configure(self, server_url: str, **settings: str) -> SyncdSetup:
        """(Re)write the tree's configuration for an emulator at ``server_url``."""
        return write_syncd_config(
            self.workdir,
            folder=self.folder,
            server_url=server_url,
            concurrency=TREE_CONCURRENCY,
            **settings,
        )


def tree_size(ctx: BenchContext) -> int:
    return ctx.size(100_000, 2_000)


def make_tree(ctx: BenchContext) -> SyncedTree:
    """Write the (not yet synced) tree in a new scratch directory."""
    workdir = ctx.scratch("tree")
    files = tree_size(ctx)
    ctx.log(f"writing a tree of {files} files")
    write_tree(workdir / "tree", files)
    return SyncedTree(workdir, workdir / "tree", files, workdir / "emulator-data")


def remember_synced_tree(ctx: BenchContext, tree: SyncedTree) -> None:
    ctx.shared[_KEY] = tree


def synced_tree(ctx: BenchContext) -> SyncedTree:
    """The shared synced tree; built and synced with ``syncd sync`` when nobody did yet."""
    known = ctx.shared.get(_KEY)
    if isinstance(known, SyncedTree):
        return known
    tree = make_tree(ctx)
    ctx.log(f"first sync of {tree.files} files with syncd sync")
    with EmulatorProcess(ctx.python, tree.emulator_data) as emulator:
        setup = tree.configure(emulator.url, log_level="warning")
        run_measured(
            [ctx.python, "-m", "syncd", "-c", str(setup.config), "sync", "--no-progress"],
            output_dir=tree.workdir,
            env=syncd_env(dict(os.environ)),
            cwd=ctx.repo,
            timeout=3600,
        ).check("syncd sync of the tree")
    uploaded = count_state(setup.state_db, "uploaded")
    if uploaded != tree.files:
        raise RuntimeError(f"the tree's first sync uploaded {uploaded} of {tree.files} files")
    remember_synced_tree(ctx, tree)
    return tree


def discard_synced_tree(ctx: BenchContext) -> None:
    """Delete the shared tree now (it is large)."""
    tree = ctx.shared.pop(_KEY, None)
    if isinstance(tree, SyncedTree):
        ctx.discard(tree.workdir)
