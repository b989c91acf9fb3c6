"""Path keys and ignore rules (pure: no files are touched)."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from syncd import paths
from syncd.config.models import FolderConfig
from syncd.paths import IgnoreRules, display_name, is_valid_utf8_name, printable_key
from syncd.purposes import DEFAULT_EXCLUDE


class TestIncludeRules:
    def test_pattern_without_slash_matches_the_basename_at_any_depth(self) -> None:
        """``*.jsonl`` takes a .jsonl file whether it is at the top or deep down."""
        rules = IgnoreRules(["*.jsonl"], [])
        assert rules.matches("a.jsonl")
        assert rules.matches("x/y/z/a.jsonl")
        assert not rules.matches("a.json")
        assert not rules.matches("a.jsonl/readme.txt")

    def test_globs_are_case_sensitive(self) -> None:
        """``*.jsonl`` does not take ``A.JSONL``."""
        rules = IgnoreRules(["*.jsonl"], [])
        assert not rules.matches("A.JSONL")

    def test_double_star_spans_any_number_of_directories_including_none(self) -> None:
        """``data/**/*.jsonl`` takes files directly in data and at any depth below it."""
        rules = IgnoreRules(["data/**/*.jsonl"], [])
        assert rules.matches("data/a.jsonl")
        assert rules.matches("data/x/a.jsonl")
        assert rules.matches("data/x/y/z/a.jsonl")
        assert not rules.matches("other/a.jsonl")
        assert not rules.matches("a.jsonl")
        assert not rules.matches("database/a.jsonl")

    def test_leading_double_star_and_trailing_double_star(self) -> None:
        """``**/train/*.jsonl`` anchors nowhere; ``raw/**`` takes everything under raw."""
        rules = IgnoreRules(["**/train/*.jsonl", "raw/**"], [])
        assert rules.matches("train/a.jsonl")
        assert rules.matches("a/b/train/a.jsonl")
        assert not rules.matches("a/train/b/a.jsonl")
        assert rules.matches("raw/x.bin")
        assert rules.matches("raw/deep/er/x.bin")
        assert not rules.matches("raw")

    def test_single_star_in_a_path_pattern_stays_in_one_directory(self) -> None:
        """In ``data/*.jsonl`` the star does not cross a ``/``."""
        rules = IgnoreRules(["data/*.jsonl"], [])
        assert rules.matches("data/a.jsonl")
        assert not rules.matches("data/x/a.jsonl")

    def test_leading_slash_anchors_at_the_root(self) -> None:
        """``/top.jsonl`` takes only the file at the top."""
        rules = IgnoreRules(["/top.jsonl"], [])
        assert rules.matches("top.jsonl")
        assert not rules.matches("x/top.jsonl")

    def test_trailing_slash_include_takes_a_whole_directory(self) -> None:
        """``data/`` in include means everything under data."""
        rules = IgnoreRules(["data/"], [])
        assert rules.matches("data/a/b.bin")
        assert not rules.matches("other/b.bin")

    def test_empty_include_takes_nothing(self) -> None:
        """No include pattern means no file is taken (defaults come from the config)."""
        assert not IgnoreRules([], []).matches("a.jsonl")

    def test_star_matches_names_with_newlines(self) -> None:
        """A newline in a name is an ordinary character for globs."""
        rules = IgnoreRules(["*.jsonl", "d/**"], [])
        assert rules.matches("line\nbreak.jsonl")
        assert rules.matches("d/new\nline/x")

    def test_character_classes(self) -> None:
        """``[seq]``, ``[!seq]`` and ranges work; set-like text compiles without warnings."""
        rules = IgnoreRules(["part-[0-9].jsonl", "[!.]x.txt", "[[]weird].txt", "[a&&b~~]"], [])
        assert rules.matches("part-3.jsonl")
        assert not rules.matches("part-x.jsonl")
        assert rules.matches("ax.txt")
        assert not rules.matches(".x.txt")
        assert rules.matches("[weird].txt")
        assert rules.matches("&")

    def test_unclosed_bracket_is_literal(self) -> None:
        """A ``[`` without ``]`` matches itself."""
        rules = IgnoreRules(["a[b.txt"], [])
        assert rules.matches("a[b.txt")
        assert not rules.matches("ab.txt")

    @given(
        name=st.text(alphabet="ab.-[]!?", min_size=0, max_size=8),
        pattern=st.text(alphabet="ab.*?[]!-", min_size=1, max_size=6),
    )
    # Found by Hypothesis: an empty range (re.error: bad character range), a "[" inside a
    # class (FutureWarning: possible nested set) and "[!]".
    @example(name="-x", pattern="[?-.]x")
    @example(name="[", pattern="[[-[]")
    @example(name="a", pattern="[![]")
    @example(name="!", pattern="[!]")
    def test_basename_patterns_agree_with_fnmatchcase(self, name: str, pattern: str) -> None:
        """For one-name patterns, matching is exactly ``fnmatch.fnmatchcase``."""
        if not name:
            return
        assert IgnoreRules([pattern], []).takes_file(name) == fnmatch.fnmatchcase(name, pattern)


class TestExcludeRules:
    def test_pattern_without_slash_matches_any_component(self) -> None:
        """``.*`` excludes hidden files and everything inside hidden directories."""
        rules = IgnoreRules(["*"], [".*"])
        assert not rules.matches(".env")
        assert not rules.matches(".git/config")
        assert not rules.matches("a/.cache/deep/x.jsonl")
        assert rules.matches("a/visible.jsonl")
        assert rules.excludes_dir(".git")
        assert rules.excludes_dir("a/.cache/deep")
        assert not rules.excludes_dir("a/b")

    def test_default_exclude_drops_temp_and_editor_files(self) -> None:
        """The project defaults exclude backups, swap files and partial downloads."""
        rules = IgnoreRules(["*"], DEFAULT_EXCLUDE)
        for name in ("a.jsonl~", "#a.jsonl#", "a.tmp", "a.part", "x.crdownload", ".a.swp"):
            assert not rules.matches(name), name
            assert not rules.matches(f"dir/{name}"), name
        assert rules.matches("a.jsonl")

    def test_path_pattern_matches_the_whole_path(self) -> None:
        """``logs/*.jsonl`` excludes only files directly under the top-level logs."""
        rules = IgnoreRules(["*.jsonl"], ["logs/*.jsonl"])
        assert not rules.matches("logs/a.jsonl")
        assert rules.matches("x/logs/a.jsonl")
        assert rules.matches("logs/sub/a.jsonl")

    def test_directory_path_exclude_covers_everything_below(self) -> None:
        """Excluding ``data/raw`` excludes that directory and all files under it."""
        rules = IgnoreRules(["*.jsonl"], ["data/raw"])
        assert rules.excludes_dir("data/raw")
        assert rules.excludes_dir("data/raw/deeper")
        assert not rules.matches("data/raw/deeper/a.jsonl")
        assert rules.matches("data/cooked/a.jsonl")

    def test_trailing_double_star_prunes_the_directory_itself(self) -> None:
        """``cache/**`` lets the walker prune ``cache`` without reading it."""
        rules = IgnoreRules(["*.jsonl"], ["cache/**"])
        assert rules.prunes_dir("cache")
        assert not rules.matches("cache/a.jsonl")
        assert rules.matches("cache.jsonl")
        assert rules.matches("x/cache/a.jsonl")

    def test_trailing_slash_exclude_is_for_directories_only(self) -> None:
        """``build/`` prunes directories named build anywhere, not files named build."""
        rules = IgnoreRules(["*"], ["build/", "out/tmp/"])
        assert rules.excludes_dir("build")
        assert rules.excludes_dir("a/b/build")
        assert not rules.matches("a/build/x.jsonl")
        assert rules.matches("build")
        assert rules.excludes_dir("out/tmp")
        assert not rules.excludes_dir("x/out/tmp")

    def test_exclude_wins_over_include(self) -> None:
        """A file taken by include but matched by exclude is not taken."""
        rules = IgnoreRules(["*.jsonl"], ["secret*"])
        assert not rules.matches("secret-train.jsonl")

    def test_walker_methods_judge_only_the_last_component(self) -> None:
        """``takes_file``/``prunes_dir`` trust that parents were pruned already."""
        rules = IgnoreRules(["*.jsonl"], [".*"])
        assert rules.takes_file(".git/a.jsonl")
        assert not rules.matches(".git/a.jsonl")
        assert not rules.prunes_dir(".git/objects")
        assert rules.excludes_dir(".git/objects")

    def test_repr_shows_the_patterns(self) -> None:
        """The repr names both pattern lists, for logs and test failures."""
        assert repr(IgnoreRules(["*.jsonl"], [".*"])) == (
            "IgnoreRules(include=['*.jsonl'], exclude=['.*'])"
        )


class TestKeys:
    def test_to_key_gives_a_root_relative_posix_path(self) -> None:
        """A file under the root maps to ``dir/name`` with forward slashes."""
        root = Path("/data/root")
        assert paths.to_key(root, root / "a" / "b.jsonl") == "a/b.jsonl"
        assert paths.to_key(root, root / "top.jsonl") == "top.jsonl"

    @pytest.mark.parametrize(
        "path",
        ["/data/other/x.jsonl", "/data/root", "/data/root/a/../../etc/passwd", "/data/rootx/a"],
    )
    def test_to_key_refuses_paths_not_below_the_root(self, path: str) -> None:
        """Outside the root, the root itself and ``..`` escapes raise ValueError."""
        with pytest.raises(ValueError, match="watched folder"):
            paths.to_key(Path("/data/root"), Path(path))

    def test_to_path_round_trips_keys(self) -> None:
        """``to_path(root, to_key(root, p)) == p`` for a file under root."""
        root = Path("/data/root")
        for key in ("a.jsonl", "x/y/z.jsonl", "new\nline.jsonl", "ünï/cödé.jsonl"):
            assert paths.to_key(root, paths.to_path(root, key)) == key

    @pytest.mark.parametrize(
        "key", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", "a\0b"]
    )
    def test_to_path_refuses_keys_that_are_not_canonical(self, key: str) -> None:
        """Absolute, ``..``, empty or ``.`` components and NUL bytes are refused."""
        with pytest.raises(ValueError, match="not a valid file key"):
            paths.to_path(Path("/data/root"), key)


class TestNames:
    def test_undecodable_names_are_detected(self) -> None:
        """A name decoded from invalid UTF-8 is flagged; real Unicode is fine."""
        assert not is_valid_utf8_name(os.fsdecode(b"bad\xff.jsonl"))
        assert is_valid_utf8_name("ünïcödé 日本.jsonl")
        assert is_valid_utf8_name("new\nline.jsonl")

    def test_printable_key_escapes_bad_bytes_and_control_characters(self) -> None:
        """Surrogate escapes become ``\\xNN``; newlines become ``\\n``; letters stay."""
        assert printable_key(os.fsdecode(b"bad\xff\xfe.jsonl")) == "bad\\xff\\xfe.jsonl"
        assert printable_key("new\nline\t.jsonl") == "new\\nline\\t.jsonl"
        assert printable_key("日本.jsonl") == "日本.jsonl"
        assert printable_key("zero\u200bwidth") == "zero\\u200bwidth"

    def test_display_name_accepts_bytes(self) -> None:
        """Raw bytes are decoded like the OS does, then made printable."""
        assert display_name(b"caf\xe9.jsonl") == "caf\\xe9.jsonl"
        assert display_name("ok.jsonl") == "ok.jsonl"


_NAME_CHARS = st.sampled_from([*"ab.~#*-_xz\n", "jsonl", "tmp", "part", "swp"])


@given(
    name=st.lists(_NAME_CHARS, min_size=1, max_size=8).map("".join),
    include=st.lists(st.sampled_from(["*.jsonl", "*", "a*", "*.tmp", "?b*"]), max_size=3),
    exclude=st.lists(st.sampled_from([*DEFAULT_EXCLUDE, "a*", "*z"]), max_size=4),
)
def test_the_one_regex_for_name_only_rules_agrees_with_the_general_path(
    name: str, include: list[str], exclude: list[str]
) -> None:
    """Rules of name patterns only decide a file with one combined regex; a whole-path pattern
    (which never matches a bare name) switches to the general two-step check: same answer."""
    fast = IgnoreRules(include=include, exclude=exclude)
    general = IgnoreRules(include=include, exclude=[*exclude, "never/here"])
    assert fast.takes_file(name) == general.takes_file(name)
    expected = any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude
    )
    assert fast.takes_file(name) == expected


def test_every_glob_fnmatch_accepts_is_a_valid_folder_setting(tmp_path: Path) -> None:
    """``include = ["[?-.]x"]`` passed check-config and then crashed the scan; now it is a glob."""
    folder = FolderConfig.model_validate(
        {"path": str(tmp_path), "purpose": "fine-tune", "include": ["[?-.]x", "[a[]*.jsonl"]}
    )
    rules = IgnoreRules(folder.include, [])
    assert rules.takes_file("[x.jsonl")
    assert not rules.takes_file("-x")  # the empty range matches nothing, as in fnmatch
