"""Metrics registry contents, and /metrics + /healthz on the status listener over real HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from syncd.api import Mistral
from syncd.domain import LocalState
from syncd.metrics import Metrics
from syncd.retention_job import RetentionSettings
from syncd.retention_preview import RetentionPreviewer
from syncd.store import open_store
from syncd.web import StatusServer, create_status_app
from tests.status_support import FixedSource


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class HealthSwitch:
    """A health check the test flips between healthy and degraded."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self) -> tuple[bool, str]:
        return (self.reason is None, self.reason or "")


@pytest.fixture
def health() -> HealthSwitch:
    return HealthSwitch()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[StatusServer, Metrics]]]:
    """Start the status listener (the page, /metrics, /healthz) on an empty real store."""
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    started: list[StatusServer] = []
    clients: list[Mistral] = []

    def start(
        health: HealthSwitch | Callable[[], tuple[bool, str]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> tuple[StatusServer, Metrics]:
        metrics = Metrics()
        client = Mistral(api_key="unused", server_url="http://127.0.0.1:9")
        clients.append(client)
        previewer = RetentionPreviewer(store, client, lambda: RetentionSettings(policies={}))
        app = create_status_app(
            store=store,
            source=FixedSource({}, previewer),
            registry=metrics.registry,
            health=health,
        )
        server = StatusServer(app, host, port)
        server.start()
        started.append(server)
        return server, metrics

    yield start
    for server in started:
        server.stop()
    for client in clients:
        client.close()
    store.dispose()


@pytest.fixture
def server(
    serve: Callable[..., tuple[StatusServer, Metrics]], health: HealthSwitch
) -> tuple[Metrics, StatusServer]:
    http, metrics = serve(health)
    return metrics, http


def _url(server: StatusServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


class TestMetrics:
    def test_all_metrics_are_exported_with_their_names(self) -> None:
        """Every metric the daemon updates appears in the exposition under its syncd_ name."""
        metrics = Metrics()
        metrics.uploads_total.labels(folder="t", purpose="fine-tune", outcome="uploaded").inc()
        metrics.upload_bytes_total.inc(1024)
        metrics.upload_failures_total.labels(folder="t", reason_class="ServerError").inc()
        metrics.api_retries_total.labels(status="503").inc()
        metrics.rate_limited_total.inc()
        metrics.queue_depth.set(7)
        metrics.oldest_unsynced_age_seconds.set(12.5)
        metrics.watcher_overflows_total.inc()
        metrics.last_good_rescan_timestamp_seconds.set(1_700_000_000)
        metrics.degraded.set(1)
        metrics.deletes_total.labels(folder="t", reason="expired").inc(2)
        samples = _samples(metrics.render().decode())
        expected = {
            (
                "syncd_uploads_total",
                (("folder", "t"), ("outcome", "uploaded"), ("purpose", "fine-tune")),
            ): 1,
            ("syncd_upload_bytes_total", ()): 1024,
            ("syncd_upload_failures_total", (("folder", "t"), ("reason_class", "ServerError"))): 1,
            ("syncd_api_retries_total", (("status", "503"),)): 1,
            ("syncd_rate_limited_total", ()): 1,
            ("syncd_queue_depth", ()): 7,
            ("syncd_oldest_unsynced_age_seconds", ()): 12.5,
            ("syncd_watcher_overflows_total", ()): 1,
            ("syncd_last_good_rescan_timestamp_seconds", ()): 1_700_000_000,
            ("syncd_degraded", ()): 1,
            ("syncd_deletes_total", (("folder", "t"), ("reason", "expired"))): 2,
        }
        assert {key: samples[key] for key in expected} == expected

    def test_build_info_and_process_metrics(self) -> None:
        """build_info carries the version; the daemon's own memory is exported too."""
        samples = _samples(Metrics().render().decode())
        [build] = [labels for name, labels in samples if name == "syncd_build_info"]
        assert dict(build)["version"] == "0.1.0"
        assert samples[("process_resident_memory_bytes", ())] > 0

    def test_registries_are_private(self) -> None:
        """Two Metrics objects never share values (no global registry)."""
        first, second = Metrics(), Metrics()
        first.rate_limited_total.inc(5)
        assert _samples(second.render().decode())[("syncd_rate_limited_total", ())] == 0

    def test_file_counts_fill_every_state(self) -> None:
        """set_file_counts sets every known state, with 0 for states absent from the counts."""
        metrics = Metrics()
        metrics.set_file_counts("train", {"uploaded": 40, "pending": 2})
        metrics.set_file_counts("train", {"uploaded": 42})
        samples = _samples(metrics.render().decode())
        by_state = {
            dict(labels)["state"]: value
            for (name, labels), value in samples.items()
            if name == "syncd_files" and dict(labels)["folder"] == "train"
        }
        assert by_state == {state.value: 0 for state in LocalState} | {"uploaded": 42}

    def test_forget_folder_drops_its_series(self) -> None:
        """A forgotten folder's file gauges disappear from the exposition."""
        metrics = Metrics()
        metrics.set_file_counts("old", {"uploaded": 1})
        metrics.set_file_counts("kept", {"uploaded": 1})
        metrics.forget_folder("old")
        metrics.forget_folder("never-seen")
        folders = {
            dict(labels)["folder"]
            for name, labels in _samples(metrics.render().decode())
            if name == "syncd_files"
        }
        assert folders == {"kept"}


class TestMetricsServer:
    def test_metrics_endpoint_serves_prometheus_text(
        self, server: tuple[Metrics, StatusServer]
    ) -> None:
        """GET /metrics returns the registry in the text format, with live values."""
        metrics, http = server
        metrics.queue_depth.set(3)
        response = httpx.get(_url(http, "/metrics"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert _samples(response.text)[("syncd_queue_depth", ())] == 3

    def test_healthz_follows_the_health_check(
        self, server: tuple[Metrics, StatusServer], health: HealthSwitch
    ) -> None:
        """GET /healthz is 200 'ok' when healthy and 503 with the reason when degraded."""
        _, http = server
        healthy = httpx.get(_url(http, "/healthz"))
        assert (healthy.status_code, healthy.text) == (200, "ok\n")
        health.reason = "inotify queue overflowed for folder 'train'"
        degraded = httpx.get(_url(http, "/healthz"))
        assert (degraded.status_code, degraded.text) == (503, health.reason + "\n")

    def test_failing_health_check_is_a_503(
        self, serve: Callable[..., tuple[StatusServer, Metrics]]
    ) -> None:
        """A health check that raises gives 503 naming the error, and the server keeps serving."""

        def broken() -> tuple[bool, str]:
            raise RuntimeError("store closed")

        http, _ = serve(broken)
        with capture_logs() as logs:
            response = httpx.get(_url(http, "/healthz"))
        assert "health_check_failed" in [entry["event"] for entry in logs]
        assert response.status_code == 503
        assert response.text == "health check failed: RuntimeError: store closed\n"
        assert httpx.get(_url(http, "/metrics")).status_code == 200

    def test_unknown_path_and_wrong_method(self, server: tuple[Metrics, StatusServer]) -> None:
        """Other paths are 404; POST /healthz is 405 (the listener is read-only)."""
        _, http = server
        assert httpx.get(_url(http, "/nothing-here")).status_code == 404
        assert httpx.post(_url(http, "/healthz")).status_code == 405
        assert httpx.post(_url(http, "/")).status_code == 405

    def test_slow_client_does_not_block_healthz(self, server: tuple[Metrics, StatusServer]) -> None:
        """A client that connects and sends nothing does not stall other requests."""
        _, http = server
        with socket.create_connection(("127.0.0.1", http.port)):
            assert httpx.get(_url(http, "/healthz"), timeout=5).status_code == 200

    def test_ipv6_loopback(
        self, serve: Callable[..., tuple[StatusServer, Metrics]], health: HealthSwitch
    ) -> None:
        """An IPv6 host, bracketed or not, binds with the right address family."""
        for host in ("[::1]", "::1"):
            http, _ = serve(health, host)
            assert httpx.get(f"http://[::1]:{http.port}/healthz").status_code == 200

    def test_port_in_use_raises_on_start(
        self,
        server: tuple[Metrics, StatusServer],
        serve: Callable[..., tuple[StatusServer, Metrics]],
    ) -> None:
        """Binding a taken port fails in start(), not silently in the background thread."""
        _, http = server
        with pytest.raises(OSError):
            serve(HealthSwitch(), "127.0.0.1", http.port)

    def test_stop_closes_the_port(
        self, serve: Callable[..., tuple[StatusServer, Metrics]], health: HealthSwitch
    ) -> None:
        """After stop() the port refuses connections and the serving thread is gone."""
        http, _ = serve(health)
        port = http.port
        http.stop()
        http.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert not [t for t in threading.enumerate() if t.name == "syncd-status-http"]
        with pytest.raises(RuntimeError, match="not started"):
            _ = http.port
