"""What this machine offers to isolate snippets, seen from the harness's side.

Namespaces are tried by the zygote itself (they must be entered there); this module owns what the parent
decides: the pids cgroup (v1) directory of an executor, the range of unprivileged uids its workers get,
and the plain-builtins summary that goes into the run manifest (`Executor.isolation`).
"""

from __future__ import annotations

import os
import signal

PIDS_V1 = "/sys/fs/cgroup/pids"
PREFIX = "tir-harness-"
UID_FIRST = 10_000_000  # far above any uid a distribution hands out
UID_BLOCK = 4096  # uids per executor: one per live worker (ExecutorConfig.max_workers <= this)
UID_BLOCKS = 50_000


def uid_base(index: int) -> int:
    """First uid of this executor's block: executors in different processes rarely share one, and a
    shared block only lets their snippets read each other's world-readable files."""
    return UID_FIRST + ((os.getpid() * 64 + index) % UID_BLOCKS) * UID_BLOCK


def _own_pids_dir() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = PIDS_V1 + path.rstrip("/")
            usable = os.access(base, os.W_OK) and os.path.exists(os.path.join(base, "cgroup.procs"))
            return base if usable else None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_and_remove(path: str) -> None:
    """Kill every process in a cgroup directory tree and remove it (children first)."""
    for entry in os.scandir(path) if os.path.isdir(path) else ():
        if entry.is_dir(follow_symlinks=False):
            kill_and_remove(entry.path)
    for _ in range(100):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            break
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def make_pids_cgroup(name: str) -> str | None:
    """A fresh pids cgroup for one executor, or None where the machine does not let us make one.
    Leftovers of executors whose process is gone are removed on the way."""
    base = _own_pids_dir()
    if base is None:
        return None
    try:
        for entry in os.listdir(base):
            if entry.startswith(PREFIX):
                pid = entry[len(PREFIX) :].split("-", 1)[0]
                if pid.isdigit() and not _alive(int(pid)):
                    kill_and_remove(os.path.join(base, entry))
        path = os.path.join(base, f"{PREFIX}{os.getpid()}-{name}")
        os.mkdir(path)
    except OSError:
        return None
    if not os.path.exists(os.path.join(path, "pids.max")):
        kill_and_remove(path)
        return None
    return path


def summary(config: dict, facts: dict) -> dict:
    """The isolation actually in force, as plain builtins for the run manifest."""
    cgroup = facts.get("process_limit") == "pids_cgroup_v1"
    return {
        "pid_namespace": bool(facts.get("pid_namespace")),
        "network_namespace": bool(facts.get("network_namespace")),
        "network": "none" if facts.get("network_namespace") else "host",
        "user_namespace": bool(facts.get("user_namespace")),
        "unprivileged_uid": bool(facts.get("uid_drop")),
        "process_limit": facts.get("process_limit", "none"),
        "max_processes": config["max_processes"] - 2,
        "kill_scope": "pid_namespace" if facts.get("pid_namespace") else "process_group",
        "rlimits": ["AS", "CPU", "FSIZE", "CORE", "NOFILE"] + ([] if cgroup else ["NPROC"]),
        "cpu_limit": "per_call_watchdog",
        "no_new_privs": True,
        "environment": "scrubbed",
        "workdir": "private_temporary",
        "filesystem": "uid_permissions" if facts.get("uid_drop") else "same_user_as_harness",
        "hidden_dirs": list(facts.get("hidden_dirs", [])),
    }
