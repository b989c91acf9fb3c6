"""The status page's HTML: the report's documents through one Jinja2 template.

Autoescaping is on for everything, and file names go through :func:`printable_key` first, so a
name with ``<script>``, quotes, a newline or a right-to-left override shows as the text it is
(the template also isolates each name in a ``<bdi>``). Paging and the folder filter are plain
links and forms (GET), so the page works without its small refresh script.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jinja2

from syncd.config.durations import format_duration
from syncd.domain import LocalState
from syncd.paths import printable_key
from syncd.retention_preview import RetentionPreview
from syncd.web.params import page_number
from syncd.web.report import StatusReport, retention_document

__all__ = ["REFRESH_SECONDS", "render", "render_unavailable"]

#: The page reloads itself this often (its script; a meta refresh without JavaScript).
REFRESH_SECONDS = 10
#: Width of a folder's state bar in SVG units (the bar scales to its cell).
_BAR_UNITS = 1000
_PAGE_PARAMS = ("folder", "problems_page", "activity_page", "q")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("syncd.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["name"] = lambda value: "" if value is None else printable_key(str(value))
    env.filters["age"] = _age
    env.filters["size"] = _size
    env.filters["when"] = _when
    return env


def _age(seconds: float | None) -> str:
    """``"3m12s"`` for a number of seconds; ``"-"`` for None."""
    if seconds is None:
        return "-"
    return format_duration(timedelta(seconds=max(round(seconds), 0))) if seconds >= 1 else "0s"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _when(iso: str | None) -> str:
    """An ISO timestamp as ``2026-12-03 09:41:07 UTC``."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state_bar(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Segments of a folder's coloured bar: one per state with files, in the states' order."""
    total = sum(counts.values())
    segments: list[dict[str, Any]] = []
    x = 0
    for state in LocalState:
        n = counts.get(state.value, 0)
        if not n:
            continue
        width = max(round(n * _BAR_UNITS / total), 4)
        segments.append({"state": state.value, "count": n, "x": x, "width": width})
        x += width
    return segments


def _link(params: Mapping[str, str], **changes: object) -> str:
    """This page's URL with ``changes`` applied to its query (empty values dropped)."""
    query = {k: params[k] for k in _PAGE_PARAMS if params.get(k)}
    query.update({k: str(v) for k, v in changes.items() if v not in (None, "")})
    for k, v in changes.items():
        if v in (None, ""):
            query.pop(k, None)
    return "/?" + urlencode(query) if query else "/"


def _pager(params: Mapping[str, str], name: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """Links to the neighbouring pages; ``pages`` only where the list was counted."""
    limit = document["limit"]
    number = document["offset"] // limit + 1
    if "total" in document:
        pages: int | None = max((document["total"] + limit - 1) // limit, 1)
        has_more = number < (pages or 1)
    else:
        pages, has_more = None, bool(document["has_more"])
    return {
        "number": number,
        "pages": pages,
        "previous": _link(params, **{name: number - 1}) if number > 1 else None,
        "next": _link(params, **{name: number + 1}) if has_more else None,
    }


def render(
    report: StatusReport,
    params: Mapping[str, str],
    preview: RetentionPreview | None,
    rows: int,
) -> str:
    """The whole page for one request (``params``: the query string)."""
    folder = params.get("folder") or None
    problems_page = page_number(params, "problems_page")
    activity_page = page_number(params, "activity_page")
    overview = report.overview()
    for entry in overview["folders"]:
        entry["bar"] = _state_bar(entry["counts"])
    problems = report.problems(folder=folder, limit=rows, offset=(problems_page - 1) * rows)
    activity = report.activity(limit=rows, offset=(activity_page - 1) * rows)
    nodes = report.nodes()
    jobs = report.jobs(limit=rows)
    query = (params.get("q") or "").strip()
    context = {
        "overview": overview,
        "problems": problems,
        "problems_pager": _pager(params, "problems_page", problems),
        "activity": activity,
        "activity_pager": _pager(params, "activity_page", activity),
        "retention": retention_document(preview, report.live.next_retention_at),
        # One node is this daemon on its own: the table says more than that only in a fleet.
        "nodes": nodes if len(nodes["nodes"]) > 1 else None,
        "lineage": report.lineage(query) if query else None,
        # Only where results come home (or came home under an earlier config).
        "jobs": jobs if jobs["jobs"] else None,
        "query": query,
        "folder": folder,
        "folder_names": [f["name"] for f in overview["folders"]],
        "refresh": REFRESH_SECONDS,
        "clear_filter": _link(params, folder=None, problems_page=None),
    }
    return _environment().get_template("status.html").render(context)


def render_unavailable(error: str) -> str:
    """The page when the state database does not answer: why, and that it retries."""
    return (
        _environment().get_template("unavailable.html").render(error=error, refresh=REFRESH_SECONDS)
    )
