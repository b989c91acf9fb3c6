"""Results come home (issue 24): the config's rules, and landing a result whole and in place."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from syncd.results import landing
from syncd.results.batch_order import ordered_by
from syncd.results.naming import beside_name, result_names
from syncd.results.specs import results_specs
from tests.test_config import load, problems


def _folder(path: str, purpose: str, extra: str = "") -> str:
    return f'[[folders]]\npath = "{path}"\npurpose = "{purpose}"\n{extra}\n'


class TestConfig:
    def test_results_inside_a_watched_folder_are_refused(self, tmp_path: Path) -> None:
        text = _folder("in", "batch", 'results = "in/results"')
        [problem] = problems(tmp_path, text)
        assert "folders[0].results" in problem and "uploaded back" in problem

    def test_a_watched_folder_inside_results_is_refused(self, tmp_path: Path) -> None:
        text = _folder("out/in", "ocr") + _folder("data", "ocr", 'results = "out"')
        [problem] = problems(tmp_path, text)
        assert "folders[0].path" in problem and "folders[1].results" in problem

    def test_two_folders_cannot_share_a_results_folder(self, tmp_path: Path) -> None:
        text = _folder("a", "ocr", 'results = "out"') + _folder("b", "ocr", 'results = "out"')
        [problem] = problems(tmp_path, text)
        assert "own results folder" in problem

    def test_only_batch_and_ocr_folders_have_results(self, tmp_path: Path) -> None:
        [problem] = problems(tmp_path, _folder("a", "fine-tune", 'results = "out"'))
        assert "only batch and ocr folders" in problem

    def test_submit_needs_a_model_and_an_endpoint(self, tmp_path: Path) -> None:
        text = _folder("a", "batch", 'results = "out"\nbatch_jobs = "submit"')
        [problem] = problems(tmp_path, text)
        assert "batch_model and batch_endpoint" in problem

    def test_poll_interval_max_must_cover_the_interval(self, tmp_path: Path) -> None:
        text = '[results]\npoll_interval = "10s"\npoll_interval_max = "2s"\n' + _folder("a", "ocr")
        [problem] = problems(tmp_path, text)
        assert "poll_interval_max" in problem

    def test_specs_name_what_comes_back_and_how(self, tmp_path: Path) -> None:
        text = (
            _folder(
                "a",
                "batch",
                'results = "out"\nbatch_jobs = "submit"\nbatch_model = "m"\n'
                'batch_endpoint = "/v1/embeddings"\nmax_jobs_per_hour = 3',
            )
            + _folder("b", "ocr", 'results = "text"')
            + _folder("c", "batch")
        )
        specs = list(results_specs(load(tmp_path, text)).values())
        assert [(s.kind, s.mode, s.model, s.endpoint, s.max_per_hour) for s in specs] == [
            ("batch", "submit", "m", "/v1/embeddings", 3),
            ("ocr", "ocr", "mistral-ocr-latest", None, 100),
        ]
        assert specs[1].results == (tmp_path / "text").resolve()


def test_result_names_mirror_the_input_tree() -> None:
    assert result_names("batch", "eu/q3.jsonl") == ("eu/q3.output.jsonl", "eu/q3.errors.jsonl")
    assert result_names("ocr", "a/contract.pdf") == ("a/contract.md", "a/contract.ocr.json")
    assert result_names("ocr", "contract.png", keep_extension=True)[0] == "contract.png.md"
    assert beside_name("eu/q3.output.jsonl", "abcdef0123") == "eu/q3.output.abcdef01.jsonl"


class TestLanding:
    def test_a_short_download_never_lands(self, tmp_path: Path) -> None:
        with pytest.raises(landing.ResultSizeError, match="reported 10"):
            landing.land(
                tmp_path, "a/r.jsonl", [b"12345"], expected_size=10, previous=None, beside="x"
            )
        assert list((tmp_path / "a").iterdir()) == []

    def test_a_symlinked_directory_in_the_results_folder_is_never_followed(
        self, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        root = tmp_path / "results"
        root.mkdir()
        (root / "eu").symlink_to(outside)
        with pytest.raises(OSError, match="symlink"):
            landing.land(
                root, "eu/q.output.jsonl", [b"x\n"], expected_size=2, previous=None, beside="y"
            )
        assert list(outside.iterdir()) == []

    def test_a_file_a_person_edited_is_kept_and_the_result_lands_beside(
        self, tmp_path: Path
    ) -> None:
        first = landing.land(
            tmp_path, "r.md", [b"v1\n"], expected_size=3, previous=None, beside="r.k.md"
        )
        assert (first.path, first.beside) == ("r.md", False)
        ours = landing.Previous(first.size, first.sha256)
        # Unchanged since syncd wrote it: replaced.
        second = landing.land(
            tmp_path, "r.md", [b"v2\n"], expected_size=3, previous=ours, beside="r.k.md"
        )
        assert (second.path, (tmp_path / "r.md").read_bytes()) == ("r.md", b"v2\n")
        # Edited by a person (it no longer matches what syncd wrote last): kept.
        (tmp_path / "r.md").write_bytes(b"my edit\n")
        mine = landing.Previous(second.size, second.sha256)
        third = landing.land(
            tmp_path, "r.md", [b"v3\n"], expected_size=3, previous=mine, beside="r.k.md"
        )
        assert (third.path, third.beside) == ("r.k.md", True)
        assert (tmp_path / "r.md").read_bytes() == b"my edit\n"
        assert (tmp_path / "r.k.md").read_bytes() == b"v3\n"

    def test_a_file_syncd_never_wrote_is_kept(self, tmp_path: Path) -> None:
        (tmp_path / "r.md").write_bytes(b"someone's\n")
        landed = landing.land(
            tmp_path, "r.md", [b"v\n"], expected_size=2, previous=None, beside="r.k.md"
        )
        assert landed.beside and (tmp_path / "r.md").read_bytes() == b"someone's\n"

    def test_own_temporaries_are_cleaned_and_a_fresh_one_of_another_node_is_not(
        self, tmp_path: Path
    ) -> None:
        mine = tmp_path / "d" / ".r.jsonl.syncd-n1-abcd.tmp"
        theirs = tmp_path / "d" / ".r.jsonl.syncd-n2-abcd.tmp"
        old = tmp_path / ".q.jsonl.syncd-n2-ffff.tmp"
        mine.parent.mkdir()
        for path in (mine, theirs, old):
            path.write_bytes(b"partial")
        os.utime(old, (0, 0))
        assert landing.clean_temporaries(tmp_path, owner="n1", older_than=3600) == 2
        assert [p.exists() for p in (mine, theirs, old)] == [False, True, False]


def test_batch_output_is_written_in_the_order_of_the_input() -> None:
    lines = [
        {"custom_id": "c", "response": 3},
        {"custom_id": "zz", "response": "not asked"},
        {"custom_id": "a", "response": 1},
        {"no_id": True},
        {"custom_id": "b", "response": 2},
    ]
    src = io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    dst = io.BytesIO()
    ordered_by(["a", "b", "c"])(src, dst)
    written = [json.loads(line) for line in dst.getvalue().splitlines()]
    assert [w.get("custom_id") for w in written] == ["a", "b", "c", "zz", None]


def test_one_node_holds_a_job_until_its_claim_runs_out(engine_store: object) -> None:
    """Fleet mode: a job (its create, its download) is worked by one node at a time."""
    from datetime import UTC, datetime, timedelta

    from syncd.store import Store
    from syncd.store import jobs as job_rows

    assert isinstance(engine_store, Store)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lease = timedelta(seconds=60)
    with engine_store.session() as s:
        job_rows.ensure_job(
            s,
            key="k",
            folder="shared:x",
            kind="batch",
            mode="submit",
            sha256="ab" * 32,
            input_file_id="f",
            rel_path="a.jsonl",
            model="m",
            now=now,
        )
    with engine_store.session() as s:
        first = job_rows.claim_job(s, "k", node="n1", now=now, lease=lease, states=["pending"])
    with engine_store.session() as s:
        second = job_rows.claim_job(s, "k", node="n2", now=now, lease=lease, states=["pending"])
    with engine_store.session() as s:
        later = job_rows.claim_job(
            s, "k", node="n2", now=now + 2 * lease, lease=lease, states=["pending"]
        )
    assert first is not None and first.claimed_by == "n1"
    assert second is None
    assert later is not None and later.claimed_by == "n2"
