"""The response store: modes, what is in the key, warnings and errors, crash safety."""

import logging
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing

import pytest

from edgellm.context import RunContext, use_context
from edgellm.errors import ConfigError
from edgellm.models.chat import ChatBackend, Generation, messages_for
from edgellm.models.replay import ReplayLLM
from edgellm.models.store import ReplayMiss, open_store, store_path
from conftest import sample


class FakeLLM(ChatBackend):
    """Answers at once and remembers what it was asked; ``dtype`` changes outputs,
    ``concurrency``, ``batch_size``, ``device`` and the API key do not."""

    backend_name = "fake"

    def __init__(self, model="fake-7b", answer="B", dtype=None, concurrency=1, batch_size=1,
                 device="cpu", api_key_env=None, **params):
        super().__init__(model, **params)
        self.answer = answer
        self.dtype = dtype
        self.concurrency, self.batch_size, self.device = concurrency, batch_size, device
        self._key = os.environ.get(api_key_env) if api_key_env else None
        self.calls = []

    def output_settings(self):
        return {"dtype": self.dtype} if self.dtype else {}

    def complete(self, messages):
        self.calls.append(messages)
        return Generation(text=f"The answer is {self.answer}.", prompt_tokens=40,
                          completion_tokens=4, token_times=[0.25, 0.3, 0.36, 0.4], e2e=0.4)


def rows(path):
    """(rows, distinct prompts) in the store file, read as another process would."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT prompt_key) FROM responses").fetchone()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "responses.sqlite")


def test_auto_replays_hits_with_original_timings_and_calls_for_misses(path):
    first = FakeLLM(store=path, answer="B")
    recorded = first.generate_batch([sample(i) for i in range(3)])
    assert len(first.calls) == 3 and not any(r["replayed"] for r in recorded)
    assert rows(path) == (3, 3)

    again = FakeLLM(store=path, answer="C")  # a different answer would show a new call
    out = again.generate_batch([sample(i) for i in range(5)])
    assert again.calls == [messages_for(sample(3)), messages_for(sample(4))]
    assert [r["replayed"] for r in out] == [True, True, True, False, False]
    assert [r["prediction"] for r in out] == ["B", "B", "B", "C", "C"]
    assert out[0]["perf"]["time_to_first_token"] == 0.25
    assert out[0]["perf"]["e2e_latency"] == 0.4
    assert out[0]["perf"]["itl"] == pytest.approx([0.05, 0.06, 0.04])
    assert out[0]["usage"]["completion_tokens"] == 4
    assert rows(path) == (5, 5)


def test_record_calls_the_model_every_time_and_refreshes_one_row_per_key(path):
    FakeLLM(store=path, answer="B").generate_batch([sample(i) for i in range(3)])
    recorder = FakeLLM(store=path, store_mode="record", answer="D")
    out = recorder.generate_batch([sample(i) for i in range(3)])
    assert len(recorder.calls) == 3 and [r["prediction"] for r in out] == ["D"] * 3
    assert rows(path) == (3, 3)
    # the new answers replaced the stored ones: a rerun in auto mode replays them
    assert [r["prediction"] for r in FakeLLM(store=path).generate_batch([sample(0)])] == ["D"]


def test_replay_answers_from_the_store_only(path):
    FakeLLM(store=path).generate_batch([sample(i) for i in range(2)])
    replayer = FakeLLM(store=path, store_mode="replay")
    assert [r["replayed"] for r in replayer.generate_batch([sample(1), sample(0)])] == [True] * 2
    with pytest.raises(ReplayMiss):
        replayer.generate_batch([sample(0), sample(7), sample(8)])
    assert replayer.calls == []


def test_sampling_and_output_settings_are_in_the_key_concurrency_is_not(path):
    FakeLLM(store=path, temperature=0.0, max_tokens=64, dtype="bf16").generate_batch([sample(0)])
    for changed in ({"temperature": 0.7}, {"max_tokens": 32}, {"top_p": 0.9}, {"seed": 1},
                    {"repetition_penalty": 1.1}, {"stop": "\n"}, {"dtype": "fp32"},
                    {"system_prompt": "Be brief."}):
        params = {"temperature": 0.0, "max_tokens": 64, "dtype": "bf16", **changed}
        llm = FakeLLM(store=path, **params)
        llm.generate_batch([sample(0)])
        assert len(llm.calls) == 1, changed
    same = FakeLLM(store=path, temperature=0.0, max_tokens=64, dtype="bf16", concurrency=16,
                   batch_size=8, device="cuda:1")
    assert same.generate_batch([sample(0)])[0]["replayed"] and same.calls == []
    other_model = FakeLLM("fake-13b", store=path, temperature=0.0, max_tokens=64, dtype="bf16")
    other_model.generate_batch([sample(0)])
    assert len(other_model.calls) == 1


def test_other_settings_are_warned_once_with_the_difference_and_count(path, caplog):
    FakeLLM(store=path, temperature=0.0).generate_batch([sample(i) for i in range(3)])
    hot = FakeLLM(store=path, temperature=0.7)
    with caplog.at_level(logging.WARNING, logger="edgellm.models.store"):
        hot.generate_batch([sample(i) for i in range(4)])
        hot.generate_batch([sample(i) for i in range(4, 8)] + [sample(0)])
    warnings = [r.getMessage() for r in caplog.records if r.name == "edgellm.models.store"]
    assert len(warnings) == 1
    assert "4 prompts for model 'fake-7b' missed" in warnings[0]
    assert "3 under temperature=0.0 (asked 0.7)" in warnings[0]
    assert path in warnings[0]


def test_replay_miss_is_one_line_with_count_model_settings_and_path(path):
    FakeLLM(store=path, temperature=0.0).generate_batch([sample(0), sample(1)])
    replayer = ReplayLLM("fake-7b", store=path, temperature=0.5)
    with pytest.raises(ConfigError) as info:
        replayer.generate_batch([sample(0), sample(1), sample(2)])
    message = str(info.value)
    assert "\n" not in message and message.startswith(path + ": ")
    assert "no stored response for 3 prompts of model 'fake-7b'" in message
    assert "temperature=0.5" in message and "max_tokens=256" in message
    assert "2 under temperature=0.0 (asked 0.5)" in message
    assert "edgellm import" in message


def test_replay_backend_never_calls_a_model(path):
    with pytest.raises(RuntimeError, match="store only"):
        ReplayLLM("m", store=path).complete([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="no response store at"):
        ReplayLLM.check({"model": "m", "store": path})
    with pytest.raises(ValueError, match="only replays"):
        ReplayLLM.check({"model": "m", "store_mode": "auto"})
    assert ReplayLLM("m", store=path, store_mode="auto").store_mode == "replay"


def test_store_path_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGELLM_STORE", raising=False)
    monkeypatch.delenv("RESULT_SAVED_URL", raising=False)
    assert store_path() == str(tmp_path / "workspace" / "responses.sqlite")
    monkeypatch.setenv("RESULT_SAVED_URL", str(tmp_path / "ws" / "job" / "algo"))
    assert store_path() == str(tmp_path / "ws" / "responses.sqlite")
    monkeypatch.setenv("EDGELLM_STORE", "env.sqlite")
    assert store_path() == str(tmp_path / "env.sqlite")
    assert store_path("given.sqlite") == str(tmp_path / "given.sqlite")
    # edgellm run's context wins over the environment (what Ianvs runs fall back to)
    with use_context(RunContext(workspace=str(tmp_path / "run"))):
        assert store_path() == str(tmp_path / "run" / "responses.sqlite")
    with use_context(RunContext(store_path="run.sqlite")):
        assert store_path() == str(tmp_path / "run.sqlite")
        assert store_path("given.sqlite") == str(tmp_path / "given.sqlite")


def test_one_store_per_process_and_file(path, monkeypatch):
    store = open_store(path)
    assert open_store(path) is store
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # as in a forked worker
    assert open_store(path) is not store


def _record_in_child(path, start):
    llm = FakeLLM(store=path)
    llm.generate_batch([sample(i) for i in range(start, start + 20)])
    llm.close()
    return len(llm.calls)


def test_forked_workers_write_one_store(path):
    FakeLLM(store=path).generate_batch([sample(0)])  # the parent has it open before forking
    with multiprocessing.get_context("fork").Pool(2) as pool:
        calls = pool.starmap(_record_in_child, [(path, 0), (path, 20)])
    assert calls == [19, 20]
    assert rows(path) == (40, 40)


def test_store_keeps_no_secrets_from_the_environment(path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-to-be-stored-1234")
    llm = FakeLLM(store=path, api_key_env="OPENAI_API_KEY")
    llm.generate_batch([sample(i) for i in range(3)])
    llm.close()
    for name in os.listdir(os.path.dirname(path)):
        with open(os.path.join(os.path.dirname(path), name), "rb") as handle:
            assert b"sk-test-not-to-be-stored" not in handle.read()


def test_a_file_that_is_not_a_store_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are notes\n" * 200)
    with pytest.raises(ConfigError, match="not an edgellm response store"):
        len(open_store(str(bad)))
    newer = str(tmp_path / "newer.sqlite")
    len(open_store(newer))
    with closing(sqlite3.connect(newer, isolation_level=None)) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE name='schema_version'")
    open_store(newer).close()
    with pytest.raises(ConfigError, match="schema version 99 is newer"):
        len(open_store(newer))


CHILD = textwrap.dedent("""
    import sys, time
    from edgellm.models.chat import ChatBackend, Generation

    class Slow(ChatBackend):
        def complete(self, messages):
            time.sleep(0.05)
            return Generation(text="first run: B", prompt_tokens=9, completion_tokens=3,
                              token_times=[0.01, 0.02, 0.03])

    samples = [{"id": i, "task_type": "multiple_choice", "gold": "B",
                "query": f"Q{i}?\\nA. x\\nB. y"} for i in range(int(sys.argv[2]))]
    Slow("slow-1b", store=sys.argv[1], store_mode="record").generate_batch(samples)
    print("finished")
""")


def test_sigkill_midway_loses_nothing_and_a_rerun_continues(path, tmp_path):
    total = 40
    script = tmp_path / "record.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), path, str(total)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    stored = 0
    while stored < 10 and time.time() < deadline and child.poll() is None:
        time.sleep(0.005)
        if os.path.exists(path):
            try:
                stored = rows(path)[0]
            except sqlite3.OperationalError:  # the schema is being created
                pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
    before = rows(path)
    assert 10 <= before[0] < total and before[0] == before[1]

    samples = [{"id": i, "task_type": "multiple_choice", "gold": "B",
                "query": f"Q{i}?\nA. x\nB. y"} for i in range(total)]
    rerun = FakeLLM("slow-1b", store=path, answer="C")
    out = rerun.generate_batch(samples)
    kept = before[0]
    assert rerun.calls == [messages_for(s) for s in samples[kept:]]  # only the missing ones
    assert [r["completion"] for r in out[:kept]] == ["first run: B"] * kept
    assert all(r["replayed"] for r in out[:kept]) and not any(r["replayed"] for r in out[kept:])
    assert rows(path) == (total, total)  # none lost, none twice


def test_without_a_store_hyperparameter_the_workspace_store_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGELLM_STORE", raising=False)
    monkeypatch.setenv("RESULT_SAVED_URL", str(tmp_path / "ws" / "job" / "algorithm"))
    FakeLLM().generate_batch([sample(0), sample(1)])
    assert rows(str(tmp_path / "ws" / "responses.sqlite")) == (2, 2)
    off = FakeLLM(store="none")
    off.generate_batch([sample(0)])
    assert off.store is None and len(off.calls) == 1


def test_a_row_sharing_the_id_but_not_the_key_is_a_miss(path):
    FakeLLM(store=path).generate_batch([sample(0), sample(1)])
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        # as if another prompt's hash had the same first 8 bytes as sample 0's
        (key,) = conn.execute("SELECT key FROM responses ORDER BY created LIMIT 1").fetchone()
        conn.execute("UPDATE responses SET key=? WHERE key=?", (bytes(16), key))
    again = FakeLLM(store=path)
    assert [r["replayed"] for r in again.generate_batch([sample(0), sample(1)])] == [False, True]
    assert rows(path) == (2, 2)  # the answer replaced the impostor


def test_prompts_stored_meanwhile_under_the_same_settings_are_no_other_settings(path, caplog):
    """Another writer (a second process on the same workspace) stores the prompts
    between this backend's lookup and its check for other settings: nothing to warn
    about (the check compared the TEXT settings column with bytes, never equal, and
    warned "4 under " with no difference after it)."""
    llm = FakeLLM(store=path)
    store, settings = llm.store, llm.store_settings()
    samples = [sample(i) for i in range(4)]
    lookup = store.lookup

    def lookup_then_another_writer(*args, **kwargs):
        found = lookup(*args, **kwargs)
        for s in samples:
            store.save(llm.identity, settings, messages_for(s), {"completion": "elsewhere"})
        return found

    store.lookup = lookup_then_another_writer
    with caplog.at_level(logging.WARNING, logger="edgellm.models.store"):
        llm.generate_batch(samples)
    assert [r.getMessage() for r in caplog.records if r.name == "edgellm.models.store"] == []
    messages = [messages_for(s) for s in samples]
    assert store._other_settings(llm.identity, settings, messages) == []
    # under other settings they are still found and named
    hot = {**settings, "temperature": 0.7}
    assert store._other_settings(llm.identity, hot, messages) == [(settings, 4)]
