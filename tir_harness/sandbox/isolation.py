"""What this machine offers to isolate snippets, seen from the harness's side.

Namespaces are tried by the zygote itself (they must be entered there); this module owns what the parent
decides: the pids cgroup (v1) directory of an executor, the range of unprivileged uids its workers get,
and the plain-builtins summary that goes into the run manifest (`Executor.isolation`).
"""

from __future__ import annotations

import os
import signal
import time

V1_ROOT = "/sys/fs/cgroup"
PREFIX = "tir-harness-"
UID_FIRST = 10_000_000  # far above any uid a distribution hands out
UID_BLOCK = 4096  # uids per executor: one per live worker (ExecutorConfig.max_workers <= this)
UID_BLOCKS = 50_000
# unshare(2) flags, as the zygote reports them in facts["worker_namespaces"] (worker.py is never imported here)
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWNET = 0x40000000


def uid_base(index: int) -> int:
    """First uid of this executor's block: executors in different processes rarely share one, and a
    shared block only lets their snippets read each other's world-readable files."""
    return UID_FIRST + ((os.getpid() * 64 + index) % UID_BLOCKS) * UID_BLOCK


CONTROLLERS = ("memory", "cpuacct", "freezer", "pids")


def _own_dir(controller: str) -> str | None:
    """This process's directory in a cgroup v1 hierarchy, if we may make children there."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = f"{V1_ROOT}/{controller}{path.rstrip('/')}"
            if not os.path.isdir(base):  # e.g. mounted as cpu,cpuacct
                base = f"{V1_ROOT}/{controllers}{path.rstrip('/')}"
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
        if os.path.exists(os.path.join(path, "freezer.state")):  # frozen tasks die only once thawed
            try:
                with open(os.path.join(path, "freezer.state"), "w") as f:
                    f.write("THAWED")
            except OSError:
                pass
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
    for _ in range(50):  # processes killed a moment ago may still be leaving the group
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def make_cgroup(controller: str, name: str) -> str | None:
    """A fresh cgroup (v1) of one controller for one executor, or None where the machine does not let us
    make one.  Leftovers of executors whose process is gone are removed on the way."""
    base = _own_dir(controller)
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
    if not os.path.exists(os.path.join(path, "tasks")):
        kill_and_remove(path)
        return None
    if controller == "memory":  # a worker's own limit binds; the executor's group only sums them
        for knob in ("memory.use_hierarchy",):
            try:
                with open(os.path.join(path, knob), "w") as f:
                    f.write("1")
            except OSError:
                pass
    return path


def make_cgroups(name: str) -> dict[str, str | None]:
    return {c: make_cgroup(c, name) for c in CONTROLLERS}


def summary(config: dict, facts: dict) -> dict:
    """The isolation actually in force, as plain builtins for the run manifest."""
    cgroups = list(facts.get("cgroups", []))
    view = bool(facts.get("view_root"))
    return {
        "pid_namespace": bool(facts.get("pid_namespace")),
        "network_namespace": bool(facts.get("network_namespace")),
        "network": "none" if facts.get("network_namespace") else "host",
        "mount_namespace": view,
        "ipc_namespace": bool(facts.get("ipc_namespace")),
        # Each session's own network namespace (abstract and autobound Unix sockets, netlink, /proc/net):
        # what keeps sessions from finding and reaching each other; cgroup namespace: /proc/self/cgroup is "/".
        "session_network_namespace": bool(facts.get("worker_namespaces", 0) & CLONE_NEWNET),
        "cgroup_namespace": bool(facts.get("worker_namespaces", 0) & CLONE_NEWCGROUP),
        "user_namespace": bool(facts.get("user_namespace")),
        "unprivileged_uid": bool(facts.get("uid_drop")),
        "seccomp": facts.get("seccomp", "none"),
        "cgroups": cgroups,
        "process_limit": facts.get("process_limit", "none"),
        "max_processes": config["max_processes"] - 2,
        "memory_limit": "memory_cgroup_v1_per_session" if "memory" in cgroups else "rlimit_as_per_process",
        "cpu_limit": "cpuacct_cgroup_per_session" if "cpuacct" in cgroups else "per_call_watchdog_w2_only",
        "idle_sessions": "frozen" if "freezer" in cgroups else "running",
        "kill_scope": "pid_namespace" if facts.get("pid_namespace") else "process_group",
        "rlimits": ["AS", "CPU", "FSIZE", "CORE", "NOFILE"] + (["NPROC"] if "pids" not in cgroups else []),
        "no_new_privs": True,
        "environment": "scrubbed",
        "filesystem": "read_only_view" if view else (
            "uid_permissions" if facts.get("uid_drop") else "same_user_as_harness"
        ),
        "workdir": "private_tmpfs" if view else "private_temporary",
        "view": list(facts.get("view", [])),
        "hidden_dirs": list(facts.get("hidden_dirs", [])),
        "fallbacks": [f for f in (facts.get("view_error"),) if f],
    }
