"""``syncd run``: the daemon, as a composition root (:mod:`~syncd.daemon.lifecycle`) over
parts with one job each; the lifecycle module's docstring lists them."""

from syncd.daemon.lifecycle import DEFAULT_GRACE, Daemon

__all__ = ["DEFAULT_GRACE", "Daemon"]
