"""The sandbox sessions of one toolbox: keyed by (key id, session id), each with its own uid and directory.

A session holds a uid of ``uid_base .. uid_base + max_sessions`` (so the RLIMIT_NPROC count of one session is
never another's; toolboxes on one host need uid ranges of their own, ``fleetgate up`` gives each one), a working
directory ``<work_root>/<toolbox id>/sandbox-<uid>`` owned by that uid (created empty, removed
with the session), and, once the python tool ran in it, a kernel. Sessions go ``session_ttl_seconds`` after
their last call (``sweep``) or, past ``max_sessions``, least recently used first. A call of session id ""
gets a session of its own that is dropped right after. Calls of one session run one at a time (``lock``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from fleetgate.core.config import SandboxConfig
from fleetgate.toolbox import sandbox
from fleetgate.toolbox.kernel import Kernel

SessionKey = tuple[str, str]
_DIR_PREFIX = "sandbox-"


class SessionsBusy(Exception):
    """A new session is needed and every session (``max_sessions``) has a call in flight."""


@dataclass(eq=False)
class Session:
    uid: int
    workdir: Path
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    kernel: Kernel | None = None
    last_used: float = field(default_factory=time.monotonic)
    # Calls holding or waiting for the session: one in use is never evicted.
    users: int = 0

    async def close(self) -> None:
        if self.kernel is not None:
            await self.kernel.close()
            self.kernel = None
        await sandbox.kill_uid(self.uid)
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)


def prepare_work_root(config: SandboxConfig, toolbox_id: str) -> Path:
    """``<work_root>/<toolbox_id>`` (toolboxes sharing a work_root keep apart) created (mode 0711), emptied of an
    earlier run's session directories, and checked to be reachable by the sandbox uids (bwrap opens the
    directory it binds as the sandbox's own uid)."""
    root = Path(config.work_root).expanduser().resolve() / toolbox_id
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)
    root.parent.chmod(root.parent.stat().st_mode | 0o111)  # work_root itself must be searchable
    for parent in root.parents:
        if not parent.stat().st_mode & 0o001:
            raise sandbox.SandboxUnavailable(
                f"tools.sandbox.work_root {root}: {parent} is not searchable by other users, so the sandbox "
                "uids cannot reach their working directories; choose a work_root outside it (e.g. under /var/lib)"
            )
    for stale in root.glob(_DIR_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    return root


class SessionStore:
    """The live sessions, their uids and their directories."""

    def __init__(self, config: SandboxConfig, root: Path) -> None:
        self._config = config
        self._root = root
        self._sessions: OrderedDict[SessionKey, Session] = OrderedDict()
        self._free_uids = list(range(config.uid_base + config.max_sessions, config.uid_base - 1, -1))
        self._ephemeral = count()
        # Finding or creating a session is one step: two first calls of one session make one session.
        self._lookup = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    @asynccontextmanager
    async def session(self, key_id: str, session_id: str) -> AsyncIterator[Session]:
        """The session of (key_id, session_id), created if new, held (locked) for one call."""
        key = (key_id, session_id) if session_id else ("", f"\0ephemeral-{next(self._ephemeral)}")
        async with self._lookup:
            session = self._sessions.get(key) or await self._create(key)
            self._sessions.move_to_end(key)
            session.users += 1
        try:
            async with session.lock:
                session.last_used = time.monotonic()
                yield session
                session.last_used = time.monotonic()
        finally:
            session.users -= 1
            if not session_id:
                await self._drop(key)

    async def _create(self, key: SessionKey) -> Session:
        while not self._free_uids or len(self._sessions) >= self._config.max_sessions:
            idle = next((k for k, s in self._sessions.items() if s.users == 0), None)
            if idle is None:
                raise SessionsBusy(f"all {self._config.max_sessions} sandbox sessions of this toolbox are in use")
            await self._drop(idle)
        uid = self._free_uids.pop()
        await sandbox.kill_uid(uid)
        workdir = self._root / f"{_DIR_PREFIX}{uid}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(mode=0o700)
        os.chown(workdir, uid, uid)
        session = Session(uid=uid, workdir=workdir)
        self._sessions[key] = session
        return session

    async def _drop(self, key: SessionKey) -> None:
        session = self._sessions.pop(key, None)
        if session is None:
            return
        await session.close()
        self._free_uids.append(session.uid)

    async def sweep(self) -> None:
        """Drop the sessions idle for longer than ``session_ttl_seconds``."""
        deadline = time.monotonic() - self._config.session_ttl_seconds
        for key in [k for k, s in self._sessions.items() if s.users == 0 and s.last_used < deadline]:
            await self._drop(key)

    async def close(self) -> None:
        for key in list(self._sessions):
            await self._drop(key)
