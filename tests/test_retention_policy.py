"""The retention policy as pure functions: ages, reasons, and every guard, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import LocalState
from syncd.retention import (
    Candidate,
    DeleteReason,
    FolderPolicy,
    Source,
    decide,
    plan_deletions,
    source_of,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FOLDER = "/data/ft"


def candidate(
    file_id: str = "f1",
    *,
    age: timedelta = 2 * HOUR,
    source: Source = Source.CURRENT,
    folder: str = FOLDER,
) -> Candidate:
    return Candidate(
        file_id=file_id,
        folder=folder,
        rel_path=f"{file_id}.jsonl",
        created_at=NOW - age,
        source=source,
        bytes=10,
    )


def plan(
    candidates: list[Candidate],
    *,
    policy: FolderPolicy = FolderPolicy(max_age=HOUR),  # noqa: B008 (frozen value)
    referenced: frozenset[str] | None = frozenset(),
    blocked: dict[str, str] | None = None,
    max_deletes: int = 100,
) -> list[tuple[str, DeleteReason]]:
    result = plan_deletions(
        candidates,
        {FOLDER: policy},
        now=NOW,
        referenced=referenced,
        blocked_folders=blocked or {},
        max_deletes=max_deletes,
    )
    return [(d.file_id, d.reason) for d in result.deletions]


class TestDecide:
    def test_age_is_measured_from_the_remote_created_at(self) -> None:
        """A file exactly at the maximum age stays; one second older goes."""
        policy = FolderPolicy(max_age=HOUR)
        assert decide(candidate(age=HOUR), policy, now=NOW) is None
        assert decide(candidate(age=HOUR + timedelta(seconds=1)), policy, now=NOW) == (
            DeleteReason.EXPIRED
        )

    def test_a_file_from_the_future_is_never_old_enough(self) -> None:
        """Clock skew (created_at after now) keeps the file."""
        assert decide(candidate(age=-HOUR), FolderPolicy(max_age=timedelta(0)), now=NOW) is None

    def test_no_policy_or_no_age_keeps_everything(self) -> None:
        """A folder without retention (or no longer configured) never loses a file."""
        old = candidate(age=timedelta(days=3650), source=Source.SUPERSEDED)
        assert decide(old, None, now=NOW) is None
        assert decide(old, FolderPolicy(max_age=None), now=NOW) is None

    @pytest.mark.parametrize(
        ("source", "keep_current", "reason"),
        [
            (Source.CURRENT, False, DeleteReason.EXPIRED),
            (Source.CHANGED, False, DeleteReason.EXPIRED),
            (Source.CURRENT, True, None),
            (Source.CHANGED, True, None),
            (Source.SUPERSEDED, True, DeleteReason.SUPERSEDED),
            (Source.SUPERSEDED, False, DeleteReason.SUPERSEDED),
            (Source.GONE, True, DeleteReason.SOURCE_GONE),
            (Source.GONE, False, DeleteReason.SOURCE_GONE),
        ],
    )
    def test_keep_current_spares_only_files_whose_source_still_exists(
        self, source: Source, keep_current: bool, reason: DeleteReason | None
    ) -> None:
        """Superseded versions and vanished sources go at the age whatever keep_current says."""
        policy = FolderPolicy(max_age=HOUR, keep_current=keep_current)
        assert decide(candidate(source=source), policy, now=NOW) == reason


class TestSourceOf:
    @pytest.mark.parametrize(
        ("holders", "superseded", "source"),
        [
            ([(LocalState.UPLOADED, "aa")], False, Source.CURRENT),
            ([(LocalState.MISSING, "aa"), (LocalState.UPLOADED, "aa")], False, Source.CURRENT),
            ([(LocalState.PENDING, "bb")], False, Source.CHANGED),
            ([(LocalState.UNSTABLE, "aa")], False, Source.CHANGED),
            ([(LocalState.QUARANTINED, "bb")], False, Source.CHANGED),
            ([(LocalState.UPLOADED, "bb")], False, Source.CHANGED),
            ([(LocalState.MISSING, "aa")], False, Source.GONE),
            ([], True, Source.SUPERSEDED),
            ([], False, Source.GONE),
        ],
    )
    def test_the_rows_pointing_at_a_file_say_what_became_of_its_source(
        self, holders: list[tuple[LocalState, str | None]], superseded: bool, source: Source
    ) -> None:
        """Any row holding exactly these bytes makes the file current; only missing rows: gone."""
        assert source_of("aa", is_superseded=superseded, holders=holders) == source


class TestPlanGuards:
    def test_a_plan_over_the_cap_deletes_nothing_and_says_why(self) -> None:
        """Three due files with max_deletes 2: none is deleted and the message names the cap."""
        files = [candidate(f"f{i}") for i in range(3)]
        assert plan(files, max_deletes=2) == []
        result = plan_deletions(
            files,
            {FOLDER: FolderPolicy(max_age=HOUR)},
            now=NOW,
            referenced=frozenset(),
            blocked_folders={},
            max_deletes=2,
        )
        assert result.halted is not None
        assert "max_deletes_per_run = 2" in result.message
        assert len(result.due) == 3

    def test_a_plan_at_the_cap_deletes_everything_oldest_first(self) -> None:
        """Exactly max_deletes due files are all deleted, the oldest first."""
        files = [candidate("young", age=2 * HOUR), candidate("old", age=5 * HOUR)]
        assert plan(files, max_deletes=2) == [
            ("old", DeleteReason.EXPIRED),
            ("young", DeleteReason.EXPIRED),
        ]

    def test_a_cap_of_zero_deletes_nothing(self) -> None:
        """max_deletes_per_run = 0 turns deletion off."""
        assert plan([candidate()], max_deletes=0) == []

    def test_a_file_an_active_job_reads_is_kept_and_reported(self) -> None:
        """A referenced file is never deleted; the plan lists it as kept in use."""
        result = plan_deletions(
            [candidate("used"), candidate("free")],
            {FOLDER: FolderPolicy(max_age=HOUR)},
            now=NOW,
            referenced=frozenset({"used"}),
            blocked_folders={},
            max_deletes=100,
        )
        assert [d.file_id for d in result.deletions] == ["free"]
        assert [d.file_id for d in result.kept_referenced] == ["used"]

    def test_unknown_job_lists_delete_nothing_when_something_is_due(self) -> None:
        """referenced=None (job lists unreadable) halts a run that had files due."""
        assert plan([candidate()], referenced=None) == []
        nothing_due = plan_deletions(
            [candidate(age=timedelta(0))],
            {FOLDER: FolderPolicy(max_age=HOUR)},
            now=NOW,
            referenced=None,
            blocked_folders={},
            max_deletes=100,
        )
        assert nothing_due.halted is None

    def test_a_blocked_folder_loses_nothing_while_others_proceed(self) -> None:
        """Files of a blocked folder are not even due; another folder's files still go."""
        other = "/data/other"
        result = plan_deletions(
            [candidate("a"), candidate("b", folder=other)],
            {FOLDER: FolderPolicy(max_age=HOUR), other: FolderPolicy(max_age=HOUR)},
            now=NOW,
            referenced=frozenset(),
            blocked_folders={FOLDER: "holds no files"},
            max_deletes=100,
        )
        assert [d.file_id for d in result.deletions] == ["b"]
        assert result.blocked == {FOLDER: "holds no files"}


folders = st.sampled_from(["/a", "/b", "/c"])
ids = st.sampled_from([f"id{i}" for i in range(12)])
candidates_strategy = st.lists(
    st.builds(
        Candidate,
        file_id=ids,
        folder=folders,
        rel_path=st.just("x.jsonl"),
        created_at=st.integers(-5, 100).map(lambda hours: NOW - timedelta(hours=hours)),
        source=st.sampled_from(list(Source)),
    ),
    max_size=20,
    unique_by=lambda c: c.file_id,
)
policies_strategy = st.dictionaries(
    folders,
    st.builds(
        FolderPolicy,
        max_age=st.one_of(st.none(), st.integers(0, 50).map(lambda h: timedelta(hours=h))),
        keep_current=st.booleans(),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    candidates=candidates_strategy,
    policies=policies_strategy,
    referenced=st.one_of(st.none(), st.frozensets(ids)),
    blocked=st.dictionaries(folders, st.just("unmounted?")),
    max_deletes=st.integers(0, 25),
)
def test_no_plan_ever_breaks_a_guard(
    candidates: list[Candidate],
    policies: dict[str, FolderPolicy],
    referenced: frozenset[str] | None,
    blocked: dict[str, str],
    max_deletes: int,
) -> None:
    """Never a file that was not offered as a candidate (foreign), never a referenced one,
    never over the cap, never from a blocked or unconfigured folder, never younger than its
    age, never a current file under keep_current; a run deletes every due file or none."""
    result = plan_deletions(
        candidates,
        policies,
        now=NOW,
        referenced=referenced,
        blocked_folders=blocked,
        max_deletes=max_deletes,
    )
    by_id = {c.file_id: c for c in candidates}
    assert len(result.deletions) <= max_deletes
    assert result.deletions in ((), result.due)
    if referenced is None:
        assert result.deletions == ()
    for deletion in result.deletions:
        assert deletion.file_id in by_id
        offered = by_id[deletion.file_id]
        assert referenced is not None and deletion.file_id not in referenced
        assert offered.folder not in blocked
        policy = policies[offered.folder]
        assert policy.max_age is not None
        assert NOW - offered.created_at > policy.max_age
        if policy.keep_current:
            assert offered.source not in (Source.CURRENT, Source.CHANGED)
    kept = {d.file_id for d in result.kept_referenced}
    assert kept <= (referenced or frozenset())
    assert not kept & {d.file_id for d in result.deletions}
