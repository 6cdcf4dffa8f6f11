"""The thread governor of `--threads 0` (issue 29): other processes' load read from the kernel's counters,
the thread count that follows, and changes only when a new load holds for two probes."""

from __future__ import annotations

import time

import pytest

from ganforge.cpu_share import LoadProbe, ThreadGovernor, threads_for


@pytest.mark.parametrize(
    "cores,others,want",
    [(2, 0.0, 2), (2, 0.3, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 1.9, 1), (4, 1.0, 3), (4, 2.1, 2), (1, 0.9, 1), (8, 0.0, 8)],
)
def test_threads_leave_the_cores_others_use(cores, others, want):
    assert threads_for(cores, others) == want


def _stat(path, busy_per_core: list[int]) -> None:
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} {b} 0 0 1000 0 0 0 0 0 0" for i, b in enumerate(busy_per_core)]
    path.write_text("\n".join(lines) + "\n")


def test_probe_reads_only_this_process_cores(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    _stat(stat, [0, 0, 0])
    monkeypatch.setattr("ganforge.cpu_share._own_seconds", lambda: 0.0)
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    probe = LoadProbe(cores=[0, 1], stat=str(stat))
    assert probe.reset()
    t0 = time.monotonic()
    # cpu0 busy for 100 ticks (1 s), cpu1 for 50, cpu2 (not ours) for 1000: 1.5 s of others' work.
    _stat(stat, [100, 50, 1000])
    time.sleep(0.2)
    others = probe.read()
    wall = time.monotonic() - t0
    assert others == pytest.approx(1.5 / wall, rel=0.05)


def test_probe_subtracts_its_own_cpu_time(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    _stat(stat, [0, 0])
    own = iter([0.0, 1.0])
    monkeypatch.setattr("ganforge.cpu_share._own_seconds", lambda: next(own))
    monkeypatch.setattr("os.sysconf", lambda name: 100)
    probe = LoadProbe(cores=[0, 1], stat=str(stat))
    probe.reset()
    _stat(stat, [100, 0])  # the 1 s of busy time is all our own
    assert probe.read() == pytest.approx(0.0, abs=1e-9)


def test_probe_without_counters_is_unknown(tmp_path):
    probe = LoadProbe(cores=[0], stat=str(tmp_path / "missing"))
    assert probe.read() is None


class FakeProbe:
    def __init__(self, cores: int, loads: list[float]):
        self.cores, self.loads = list(range(cores)), list(loads)

    def reset(self) -> bool:
        return True

    def read(self) -> float:
        return self.loads.pop(0)


def test_governor_follows_other_processes_with_hysteresis():
    applied = []
    gov = ThreadGovernor(FakeProbe(2, [1.0, 1.0, 0.1, 1.0, 0.1, 0.1]), set_threads=applied.append, interval=0)
    gov.threads = 2
    msg = gov.start(wait=0)
    assert applied == [1] and "threads: 1 of 2 cores" in msg
    assert gov.update() is None  # the same load: nothing to do
    assert gov.update() is None  # free for one probe only: wait
    assert gov.update() is None  # busy again: the pending change is dropped
    assert gov.update() is None  # free ...
    msg = gov.update()  # ... and free again: back to two threads
    assert applied == [1, 2] and msg == "threads 1 -> 2: the cores are free again"


def test_governor_on_a_quiet_machine_changes_nothing():
    applied = []
    gov = ThreadGovernor(FakeProbe(2, [0.05, 0.1, 0.0]), set_threads=applied.append, interval=0)
    gov.threads = 2
    assert gov.start(wait=0) is None
    assert gov.update() is None and gov.update() is None
    assert applied == []


def test_training_with_auto_threads_follows_the_load(tmp_path, monkeypatch):
    """--threads 0 on a CPU: the run starts on the cores other processes leave and says so; a later change of
    load (held for two probes) changes the count again, said in the progress output."""
    import torch

    from ganforge import cpu_share
    from ganforge.training.loop import train
    from helpers import make_archive, tiny_config

    loads = iter([1.0] + [0.0] * 1000)
    monkeypatch.setattr(cpu_share, "LoadProbe", lambda: FakeProbe(2, []))
    monkeypatch.setattr(FakeProbe, "read", lambda self: next(loads))
    monkeypatch.setattr(cpu_share, "MIN_INTERVAL", 0.0)
    before = torch.get_num_threads()
    lines: list[str] = []
    try:
        cfg = tiny_config(tmp_path, str(make_archive(tmp_path / "d.zip")), steps=6, threads=0)
        res = train(cfg, progress=False, echo=lines.append)
    finally:
        torch.set_num_threads(before)
    assert res.step == 6
    assert any(line.startswith("threads: 1 of 2 cores (other processes keep 1.0 busy") for line in lines), lines
    assert "threads 1 -> 2: the cores are free again" in lines


def test_fixed_threads_turn_the_governor_off(tmp_path, monkeypatch):
    import torch

    from ganforge import cpu_share
    from ganforge.training.loop import train
    from helpers import make_archive, tiny_config

    def boom(*a, **k):
        raise AssertionError("no governor with --threads N")

    monkeypatch.setattr(cpu_share, "ThreadGovernor", boom)
    before = torch.get_num_threads()
    try:
        res = train(tiny_config(tmp_path, str(make_archive(tmp_path / "d.zip")), steps=2, threads=1), progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert res.step == 2


def test_studio_requests_leave_a_training_its_cores(monkeypatch):
    """`serve --threads 0`: a request computes with every core, or with the cores a training leaves free."""
    from ganforge.cpu_share import RequestThreads

    applied = []
    req = RequestThreads(FakeProbe(2, [0.1, 1.2, 1.1, 0.0]), set_threads=applied.append, interval=0)
    req.threads = 2
    assert req.apply() == 2 and applied == []  # quiet: every core
    assert req.apply() == 1 and applied == [1]  # a training keeps a core busy: one thread
    assert req.apply() == 1
    assert req.apply() == 2 and applied == [1, 2]


def test_studio_threads_are_re_read_at_most_once_a_second():
    from ganforge.cpu_share import RequestThreads

    req = RequestThreads(FakeProbe(2, [1.0]), set_threads=lambda n: None, interval=60)
    req.threads = 2
    assert req.apply() == 1
    assert req.apply() == 1  # within the interval: no probe (FakeProbe would raise on an empty list)
