"""`diffill serve` is safe by default: a key when asked for, a body limit, a bounded queue
(429 with Retry-After beyond it), 400 naming a bad field, 503 until a model is loaded, and a
SIGTERM that lets the requests in flight finish. The real command with real tiny models; the
slow requests come from the random-weight model, which rarely stops before max_tokens."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_harness import Served, serving, start, stop, wait_ready
from tiny_model import TRAIN_PREFIX, TRAIN_SUFFIX, copy_folder, shared_folder

pytestmark = pytest.mark.slow
FIM = {"prompt": TRAIN_PREFIX, "suffix": TRAIN_SUFFIX, "max_tokens": 16}
SLOW = {**FIM, "max_tokens": 256, "mode": "ar", "n": 4}  # seconds of work on the random model
KEY_ENV, KEY = "DIFFILL_TEST_SERVE_KEY", "sk-serve-test-41c2"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_folder(tmp_path_factory, "random", train_steps=0)


def wait_for(served: Served, running: int, queued: int) -> None:
    """Poll /metrics until that many requests are inside the model and waiting."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = (served.metric("diffill_requests_running"), served.metric("diffill_queue_depth"))
        if now == (running, queued):
            return
        time.sleep(0.01)
    raise AssertionError(f"never saw {running} running and {queued} queued")


def test_a_key_is_required_when_one_is_set(trained: Path) -> None:
    with serving(trained, "--api-key-env", KEY_ENV, env={KEY_ENV: KEY}) as served:
        url = served.url + "/v1/completions"
        assert httpx.post(url, json=FIM).status_code == 401
        wrong = httpx.post(url, json=FIM, headers={"Authorization": "Bearer sk-other"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        right = httpx.post(url, json=FIM, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert right.status_code == 200
        assert httpx.get(served.url + "/metrics").status_code == 401
        assert httpx.get(served.url + "/health").status_code == 200  # probes need no key


def test_a_named_key_variable_that_is_unset_stops_the_command(trained: Path) -> None:
    served = start(trained, "--api-key-env", "DIFFILL_NO_SUCH_VARIABLE")
    assert served.process.wait(timeout=60) == 2
    assert "DIFFILL_NO_SUCH_VARIABLE" in served.process.stderr.read()


def test_bodies_over_the_limit_get_413_declared_or_streamed(trained: Path) -> None:
    with serving(trained, "--max-body-bytes", "2048") as served:
        url = served.url + "/v1/completions"
        big = {**FIM, "prompt": "x" * 4000}
        assert httpx.post(url, json=big).status_code == 413
        chunked = httpx.post(url, content=iter([b'{"prompt": "', b"y" * 4000, b'"}']))
        assert chunked.status_code == 413
        assert httpx.post(url, json=FIM, timeout=30).status_code == 200


def test_bad_json_and_wrong_types_get_400_naming_the_field(trained: Path) -> None:
    with serving(trained) as served:
        bad = httpx.post(served.url + "/v1/completions", content=b'{"prompt": ')
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "body"
        typed = httpx.post(served.url + "/infill", json={"input_prefix": "x", "n_predict": "9"})
        assert typed.status_code == 400 and typed.json()["error"]["param"] == "n_predict"
        assert "n_predict" in typed.json()["error"]["message"]
        empty = httpx.post(served.url + "/v1/completions", json={"prompt": ""})
        assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]


def test_a_full_queue_answers_429_with_retry_after(random_model: Path) -> None:
    limits = ("--max-concurrency", "1", "--max-queue", "1")
    with serving(random_model, *limits) as served, ThreadPoolExecutor(2) as pool:
        url = served.url + "/v1/completions"
        first = pool.submit(httpx.post, url, json=SLOW, timeout=120)
        wait_for(served, running=1, queued=0)
        second = pool.submit(httpx.post, url, json=SLOW, timeout=120)
        wait_for(served, running=1, queued=1)
        refused = httpx.post(url, json=FIM)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert first.result().status_code == 200 and second.result().status_code == 200
        assert served.metric('diffill_requests_total{route="/v1/completions",status="429"}') == 1


def test_sigterm_lets_running_and_queued_requests_finish(random_model: Path) -> None:
    served = start(random_model, "--max-concurrency", "1")
    try:
        wait_ready(served)
        with ThreadPoolExecutor(3) as pool:
            url = served.url + "/v1/completions"
            asked = [pool.submit(httpx.post, url, json=SLOW, timeout=120) for _ in range(3)]
            wait_for(served, running=1, queued=2)
            served.process.send_signal(signal.SIGTERM)
            answers = [future.result() for future in asked]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all(len(a.json()["choices"][0]["text"]) > 0 for a in answers)
        assert served.process.wait(timeout=60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(served.url + "/health")
    finally:
        stop(served)


def test_health_is_503_with_the_reason_until_a_model_loads(trained: Path, tmp_path: Path) -> None:
    broken = copy_folder(trained, tmp_path / "broken")
    (broken / "tokenizer.json").unlink()
    served = start(broken)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(served.url + "/health")
                if "failed" in health.text:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        assert health.status_code == 503 and "tokenizer.json" in health.json()["error"]["message"]
        asked = httpx.post(served.url + "/v1/completions", json=FIM)
        assert asked.status_code == 503 and asked.headers["retry-after"] == "1"
    finally:
        stop(served)
