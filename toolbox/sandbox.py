"""Processes in bubblewrap: the command line, the uid and the resource limits of every sandboxed run.

A sandbox (``tools.sandbox``) is ``bwrap`` run under its session's own non-root uid (``uid_base`` ..): every
namespace unshared (no network: an empty network namespace; its own pid namespace, killed whole with its
init when bwrap dies), the system's ``/usr`` read-only, a read-only root, a private ``/tmp`` and ``/dev/shm``
(tmpfs of ``max_file_mb`` each), no environment but PATH and HOME, and the session's working directory as
the only other writable place, ``/work``. Limits, set by ``prlimit`` before bwrap starts and inherited by all
it runs: RLIMIT_CPU (``cpu_seconds``), RLIMIT_AS (``memory_mb``), RLIMIT_NPROC (``max_processes``, bounding
a fork bomb because the uid is not root and is the session's alone), RLIMIT_FSIZE (``max_file_mb``), no core
files. The wall clock (``timeout_seconds``) is the caller's to enforce with ``stop``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetgate.core.config import SandboxConfig

MIB = 1024 * 1024
# Where the session's working directory appears inside the sandbox.
SANDBOX_WORKDIR = "/work"

log = logging.getLogger("fleetgate.toolbox.sandbox")
# Seconds a stop waits for a killed sandbox's bwrap to be reaped before it gives up waiting.
STOP_PATIENCE_SECONDS = 5.0


class SandboxUnavailable(RuntimeError):
    """Sandboxes cannot run here: not root, a missing program, or a work_root the sandbox uids cannot reach."""


def check_host(config: SandboxConfig) -> None:
    """Raise ``SandboxUnavailable`` unless this process can start sandboxes (checked once, at start)."""
    if os.geteuid() != 0:
        raise SandboxUnavailable("the toolbox runs each sandbox under a uid of its own: it must run as root")
    missing = [program for program in (config.bwrap, "setpriv", "prlimit") if shutil.which(program) is None]
    if not os.access(config.python, os.X_OK):
        missing.append(config.python)
    if missing:
        raise SandboxUnavailable(
            f"missing {', '.join(missing)} (make setup installs bubblewrap, util-linux and /usr/bin/python3)"
        )


def bwrap_argv(config: SandboxConfig, workdir: Path, command: Sequence[str]) -> list[str]:
    """The bwrap command line that runs ``command`` with ``workdir`` as its only writable directory."""
    tmpfs_size = str(config.max_file_mb * MIB)
    return [
        config.bwrap,
        "--unshare-all", "--die-with-parent", "--new-session",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", tmpfs_size, "--tmpfs", "/dev/shm",
        "--size", tmpfs_size, "--tmpfs", "/tmp",
        "--bind", str(workdir), SANDBOX_WORKDIR,
        "--remount-ro", "/",
        "--chdir", SANDBOX_WORKDIR,
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", SANDBOX_WORKDIR,
        "--setenv", "LANG", "C.UTF-8",
        "--",
        *command,
    ]  # fmt: skip


def drop_argv(config: SandboxConfig, uid: int) -> list[str]:
    """util-linux ``setpriv`` (uid and gid ``uid``, no supplementary groups) and ``prlimit`` (the limits, soft =
    hard), each exec'ing the rest of the line.

    Not subprocess's ``user=``/``preexec_fn``: they make it fork (not vfork) and change the child's ids between
    fork and exec, which crashed the child with SIGSEGV in the toolbox (gRPC's threads); without them the
    child only execs.
    """
    limits = {
        "cpu": config.cpu_seconds,
        "as": config.memory_mb * MIB,
        "nproc": config.max_processes,
        "fsize": config.max_file_mb * MIB,
        "core": 0,
    }
    ids = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    return [*ids, "prlimit", *(f"--{name}={value}:{value}" for name, value in limits.items()), "--"]


async def spawn(
    config: SandboxConfig, uid: int, workdir: Path, command: Sequence[str]
) -> asyncio.subprocess.Process:
    """Start ``command`` in a sandbox as ``uid``, with pipes for stdin, stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        *drop_argv(config, uid),
        *bwrap_argv(config, workdir, command),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        env={"PATH": os.defpath},
        cwd="/",
    )


async def stop(process: asyncio.subprocess.Process, uid: int) -> None:
    """Kill a running sandbox and reap it.

    Its processes (every process of ``uid`` but bwrap itself) are killed first: the pid namespace dies with
    its init, bwrap reaps that init and exits by itself. Killing bwrap first would orphan the init to the
    host's pid 1, which may be slow to reap it, and a zombie still counts against the uid's RLIMIT_NPROC.
    """
    if process.returncode is None:
        _kill_all(pid for pid in _pids_of(uid) if pid != process.pid)
        try:
            await asyncio.wait_for(process.wait(), 1.0)
        except TimeoutError:
            _kill_all([process.pid])
    try:
        await asyncio.wait_for(process.wait(), STOP_PATIENCE_SECONDS)
    except TimeoutError:  # never seen to last; a stop must not hang the toolbox (or its shutdown) on it
        log.warning("sandbox process %d of uid %d still running %.0f s after SIGKILL", process.pid, uid,
                    STOP_PATIENCE_SECONDS)


def exit_code(returncode: int | None) -> int:
    """The exit status the model sees: -1 for killed by a signal (or not ended)."""
    return -1 if returncode is None or returncode < 0 else returncode


def _pids_of(uid: int) -> list[int]:
    """The live (not zombie) processes of ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                if stat.read().rpartition(b")")[2].split()[0] != b"Z":
                    pids.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return pids


def _kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def kill_uid(uid: int, patience: float = 2.0) -> None:
    """Kill every process of ``uid`` and wait (at most ``patience`` s) until none is left, so the next sandbox
    of that uid starts with the whole ``max_processes`` (a killed sandbox's pid namespace dies asynchronously,
    and a toolbox that crashed may have left sandboxes behind)."""
    deadline = time.monotonic() + patience
    while (pids := await asyncio.to_thread(_pids_of, uid)) and time.monotonic() < deadline:
        _kill_all(pids)
        await asyncio.sleep(0.01)
