"""The settle window, driven by a fake clock, plus property checks of its two promises."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.watcher.debounce import Debouncer


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Key = tuple[str, str]


def _debouncer(clock: FakeClock, settle: float = 2.0, settle_max: float = 10.0) -> Debouncer[Key]:
    return Debouncer(settle=settle, settle_max=settle_max, clock=clock)


class TestDebouncer:
    def test_key_released_after_quiet_window(self) -> None:
        """A touched key is held until `settle` seconds pass without another touch."""
        clock = FakeClock()
        debouncer = _debouncer(clock)
        debouncer.touch(("data", "a.jsonl"))
        clock.advance(1.9)
        assert debouncer.due() == []
        clock.advance(0.1)
        assert debouncer.due() == [("data", "a.jsonl")]
        assert debouncer.pending() == 0

    def test_touch_restarts_quiet_window(self) -> None:
        """Each touch pushes the release back by a full settle window."""
        clock = FakeClock()
        debouncer = _debouncer(clock)
        debouncer.touch(("data", "a"))
        clock.advance(1.5)
        debouncer.touch(("data", "a"))
        clock.advance(1.5)
        assert debouncer.due() == []
        clock.advance(0.5)
        assert debouncer.due() == [("data", "a")]

    def test_continuously_written_key_released_at_cap(self) -> None:
        """A key touched without pause is released settle_max after its first touch."""
        clock = FakeClock()
        debouncer = _debouncer(clock, settle=2.0, settle_max=5.0)
        debouncer.touch(("data", "growing.log"))
        for _ in range(4):
            clock.advance(1.0)
            debouncer.touch(("data", "growing.log"))
            assert debouncer.due() == []
        clock.advance(1.0)
        assert debouncer.due() == [("data", "growing.log")]

    def test_released_key_starts_fresh(self) -> None:
        """After release, a new touch starts a new first-seen time for the cap."""
        clock = FakeClock()
        debouncer = _debouncer(clock, settle=2.0, settle_max=5.0)
        debouncer.touch(("f", "k"))
        clock.advance(2.0)
        assert debouncer.due() == [("f", "k")]
        clock.advance(10.0)
        debouncer.touch(("f", "k"))
        clock.advance(1.0)
        assert debouncer.due() == []

    def test_keys_released_in_settling_order(self) -> None:
        """Several settled keys come out oldest-quiet first, each exactly once."""
        clock = FakeClock()
        debouncer = _debouncer(clock)
        for name in ("a", "b", "c"):
            debouncer.touch(("f", name))
            clock.advance(0.1)
        debouncer.touch(("f", "a"))
        clock.advance(5.0)
        assert debouncer.due() == [("f", "b"), ("f", "c"), ("f", "a")]
        assert debouncer.due() == []

    def test_discard_and_pending(self) -> None:
        """discard() drops a key (unknown keys are ignored); pending() counts the held keys."""
        clock = FakeClock()
        debouncer = _debouncer(clock)
        debouncer.touch(("f", "a"))
        debouncer.touch(("f", "b"))
        debouncer.touch(("f", "a"))
        assert debouncer.pending() == 2
        debouncer.discard(("f", "a"))
        debouncer.discard(("f", "never-seen"))
        assert debouncer.pending() == 1
        clock.advance(3.0)
        assert debouncer.due() == [("f", "b")]

    def test_next_deadline_is_the_earliest_release(self) -> None:
        """next_deadline() is the earlier of the quiet deadline and the cap, None when idle."""
        clock = FakeClock(now=100.0)
        debouncer = _debouncer(clock, settle=2.0, settle_max=5.0)
        assert debouncer.next_deadline() is None
        debouncer.touch(("f", "a"))
        assert debouncer.next_deadline() == 102.0
        clock.advance(1.0)
        debouncer.touch(("f", "b"))
        clock.advance(0.5)
        debouncer.touch(("f", "a"))
        assert debouncer.next_deadline() == 103.0  # b, quiet since 101
        clock.advance(1.5)
        assert debouncer.due() == [("f", "b")]
        for _ in range(3):
            clock.advance(0.5)
            debouncer.touch(("f", "a"))
        assert debouncer.next_deadline() == 105.0  # a's cap, first touched at 100

    def test_waking_exactly_at_deadline_finds_key_due(self) -> None:
        """A consumer that sleeps until next_deadline() always finds something due then."""
        clock = FakeClock(now=0.1)
        debouncer = _debouncer(clock, settle=0.2, settle_max=0.7)
        debouncer.touch(("f", "a"))
        deadline = debouncer.next_deadline()
        assert deadline is not None
        clock.now = deadline
        assert debouncer.due() == [("f", "a")]

    def test_zero_settle_releases_at_once(self) -> None:
        """settle=0 releases a key on the next due() call."""
        clock = FakeClock()
        debouncer = _debouncer(clock, settle=0.0, settle_max=0.0)
        debouncer.touch(("f", "a"))
        assert debouncer.due() == [("f", "a")]

    @pytest.mark.parametrize(("settle", "settle_max"), [(-1.0, 5.0), (5.0, 4.0)])
    def test_rejects_inconsistent_windows(self, settle: float, settle_max: float) -> None:
        """A negative settle or a cap shorter than the settle window is refused."""
        with pytest.raises(ValueError, match="settle"):
            Debouncer(settle=settle, settle_max=settle_max)


# -- properties ------------------------------------------------------------------------------

_keys = st.sampled_from([("f", "a"), ("f", "b"), ("g", "a"), ("g", "c")])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("touch"), _keys),
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=4.0)),
        st.tuples(st.just("due"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=_ops,
    settle=st.floats(min_value=0.0, max_value=3.0),
    extra=st.floats(min_value=0.0, max_value=6.0),
)
def test_release_rules_hold_for_any_history(
    ops: list[tuple[str, object]], settle: float, extra: float
) -> None:
    """No key leaves early or late; every touched key is released once the windows pass."""
    settle_max = settle + extra
    clock = FakeClock()
    debouncer = _debouncer(clock, settle=settle, settle_max=settle_max)
    first: dict[Key, float] = {}
    last: dict[Key, float] = {}
    for op, arg in ops:
        if op == "touch":
            assert isinstance(arg, tuple)
            debouncer.touch(arg)
            first.setdefault(arg, clock.now)
            last[arg] = clock.now
        elif op == "wait":
            assert isinstance(arg, float)
            clock.advance(arg)
        else:
            for key in debouncer.due():
                assert key in first, "released a key that was not pending"
                quiet_long_enough = clock.now >= last[key] + settle
                capped = clock.now >= first[key] + settle_max
                assert quiet_long_enough or capped, "released before settling"
                del first[key], last[key]
            for key in first:
                assert clock.now < last[key] + settle, "a settled key was held back"
                assert clock.now < first[key] + settle_max, "a capped key was held back"
        assert debouncer.pending() == len(first)
        deadline = debouncer.next_deadline()
        if first:
            assert deadline == min(
                min(t + settle for t in last.values()), min(t + settle_max for t in first.values())
            )
        else:
            assert deadline is None
    clock.advance(settle_max)
    assert set(debouncer.due()) == set(first)
    assert debouncer.pending() == 0
