"""Run engine work in a worker process that can be killed: regorus has no timeout, so a runaway policy is stopped here."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from app.errors import LensError


class EvalTimeout(LensError):
    """The worker did not answer within the time limit; it was killed (a runaway or very slow policy)."""


class EvalMemoryLimit(EvalTimeout):
    """The worker grew past the memory limit; it was killed. A stop like a timeout (callers handle both alike)."""


def _rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _default_memory_mb() -> int:
    from app import settings

    return int(settings.get("eval_memory_mb"))


def _worker(conn) -> None:
    """Worker loop: receive (module, name, args), call, send ('ok', result) or ('err', (kind, message, hint))."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        module, name, args = msg
        try:
            fn = getattr(importlib.import_module(module), name)
            conn.send(("ok", fn(*args)))
        except LensError as err:
            conn.send(("err", ("lens", str(err), err.hint)))
        except Exception as err:  # report, keep serving
            conn.send(("err", ("crash", f"{type(err).__name__}: {err}", traceback.format_exc(limit=3))))


class Sandbox:
    """One long-lived worker process (spawned lazily, restarted after a kill); calls are serialised."""

    def __init__(self, memory_mb: int | None = None) -> None:
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.memory_mb = memory_mb  # None: the `eval_memory_mb` setting, read when the worker starts

    def _start(self) -> None:
        # a plain subprocess over a socketpair: unlike multiprocessing's spawn it never re-imports the
        # caller's __main__ (scripts, streamlit, pytest) and can be killed without side effects
        ours, theirs = socket.socketpair()
        code = f"from app.engine.sandbox import serve; serve({theirs.fileno()})"
        # the worker imports functions by module name: give it the caller's import path
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env
        )
        theirs.close()
        self._conn = Connection(ours.detach())

    def kill(self) -> None:
        """Stop the worker now (it is restarted on the next call)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def call(self, fn: Callable, args: tuple, timeout_s: float) -> Any:
        """`fn(*args)` in the worker; raises EvalTimeout after `timeout_s` (plus worker start-up on first use)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.kill()
                self._start()
                # first call pays the interpreter start and imports; do not count that against the policy
                self._conn.send(("app.engine.sandbox", "ping", ()))
                if not self._conn.poll(60):
                    self.kill()
                    raise LensError(
                        "the engine worker process did not start", "check that `python -c 'import regorus'` works"
                    )
                self._conn.recv()
            self._conn.send((fn.__module__, fn.__name__, args))
            self._wait(timeout_s)
            try:
                status, payload = self._conn.recv()
            except (EOFError, OSError):
                self.kill()
                raise LensError(
                    "the engine worker process died during evaluation", "run again; report the policy if it repeats"
                ) from None
        if status == "ok":
            return payload
        kind, message, hint = payload
        raise LensError(message, hint if kind == "lens" else "internal engine error; details: " + hint.splitlines()[-1])

    def _wait(self, timeout_s: float) -> None:
        """Wait for the answer; kill the worker at the time limit, or as soon as it grows past the memory limit."""
        limit = self.memory_mb if self.memory_mb is not None else _default_memory_mb()
        deadline = time.monotonic() + timeout_s
        step = 0.002
        while True:
            left = deadline - time.monotonic()
            if self._conn.poll(max(0.0, min(step, left))):
                return
            used = _rss_mb(self._proc.pid) if limit and limit > 0 else 0.0
            if limit and limit > 0 and used > limit:
                self.kill()
                raise EvalMemoryLimit(
                    f"evaluation stopped by the memory limit: the worker grew past {limit:,} MB "
                    f"({used:,.0f} MB) — the policy allocates without bound",
                    "raise LENS_EVAL_MEMORY_MB if the policy really needs more, else fix what it builds",
                )
            if left <= 0:
                self.kill()
                raise EvalTimeout(
                    f"evaluation stopped after {timeout_s * 1000:.0f} ms: the policy runs too long (runaway?)",
                    "raise LENS_EVAL_TIMEOUT_MS if the policy is just slow, else fix the policy's iteration",
                )
            step = min(step * 2, 0.02)  # fast answers are seen at once; a long wait checks memory every 20 ms


class SandboxPool:
    """`workers` killable worker processes, started at once in the background so their start-up overlaps the
    caller's own work (reading the DB), each warmed by `warm`; `close` stops them. Audit and what-if build on it."""

    def __init__(
        self,
        warm: Callable[[], Any],
        workers: int | None = None,
        memory_mb: int | None = None,
        name: str = "lens-pool",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.workers = max(1, workers or os.cpu_count() or 1)
        self.boxes = [Sandbox(memory_mb) for _ in range(self.workers)]
        self._starter = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=f"{name}-start", initializer=initializer
        )
        self._warming = [self._starter.submit(b.call, warm, (), 60.0) for b in self.boxes]

    def cpu_s(self) -> float:
        """CPU seconds the live worker processes have used so far (for benchmarks that count every core's work)."""
        import psutil

        total = 0.0
        for b in self.boxes:
            if b._proc is not None:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(b._proc.pid).cpu_times()
                    total += t.user + t.system
        return total

    def close(self) -> None:
        """Stop every worker (a running evaluation is killed)."""
        self._starter.shutdown(wait=True)
        for b in self.boxes:
            b.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(fd: int) -> None:
    """Entry point of the worker process: serve calls on the inherited socket until it closes."""
    _worker(Connection(fd))


def ping() -> bool:
    """Worker liveness probe."""
    return True


_SANDBOX = Sandbox()
atexit.register(_SANDBOX.kill)


def guarded(fn: Callable, *args: Any, timeout_ms: int | None) -> Any:
    """Run a module-level engine function under a time limit in the worker; inline when timeout_ms is falsy."""
    if not timeout_ms or timeout_ms <= 0:
        return fn(*args)
    return _SANDBOX.call(fn, args, timeout_ms / 1000.0)
