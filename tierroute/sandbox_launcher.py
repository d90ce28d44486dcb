"""The sandbox's launcher and audit-hook guard: Python source run in the sandbox's processes.

:mod:`tierroute.sandbox` starts ``python -I -S -c LAUNCHER CONFIG``; the launcher runs with the
caller's rights and reads only the standard library. It labels the user *before* entering any
namespace (inside a new user namespace every uid reads as the overflow uid), tries the
namespace plans, drops to the throw-away uid when one was given, and then checks the minimum
isolation: when a required part is missing it reports ``refused`` and exits without starting
the program, so a weaker sandbox never runs untrusted code silently. Only its last ``execv``
starts the program.
"""

from __future__ import annotations

REFUSED_EXIT = 126
"""The launcher's exit code when it refused to start the program."""

# Status lines written to cfg["status_fd"]: `isolation <net>,<user>`, then `refused <missing>`
# or, from init, `wait <status>`; `error <what>` if the launcher itself failed.
LAUNCHER = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
fd = cfg["status_fd"]
libc = ctypes.CDLL(None, use_errno=True)
# Before any unshare: in a new user namespace geteuid() is the overflow uid, not the caller's.
user = "root" if os.geteuid() == 0 else "own-uid"
net = "network-allowed" if cfg["network"] else "audit-hook"
for name, flags in cfg["plans"]:
    if libc.unshare(flags) == 0:
        net = name
        break
if os.fork():
    _, wait_status = os.wait()
    os._exit(0)
pid = os.fork()
if pid:
    # init: PID 1 of the new PID namespace when there is one; its exit ends them all.
    while True:
        done, wait_status = os.wait()
        if done == pid:
            os.write(fd, f"wait {wait_status}\n".encode())
            os._exit(0)
try:
    os.set_inheritable(fd, False)
    uid = cfg["uid"] if "userns" not in net else None
    if uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            user = "throwaway-uid"
        except PermissionError:
            pass  # no CAP_SETUID (a restricted container): the minimum check below decides
    os.write(fd, f"isolation {net},{user}\n".encode())
    parts = net.split("+")
    missing = [part for part in cfg["required_net"] if part not in parts]
    if cfg["required_user"] and user != cfg["required_user"]:
        missing.append(cfg["required_user"])
    if missing:
        os.write(fd, f"refused {' '.join(missing)}\n".encode())
        os._exit(cfg["refused_exit"])
    for name, value in cfg["rlimits"]:
        resource.setrlimit(getattr(resource, name), (value, value))
    soft_cpu = cfg["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, soft_cpu + 1))
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no setuid binary gives root back
    argv = [cfg["python"], "-I", "-S"]
    if net == "audit-hook":
        argv.append(cfg["guard"])
    os.execv(cfg["python"], [*argv, cfg["program"]])
except BaseException as exc:
    os.write(fd, f"error {type(exc).__name__}: {exc}\n".encode())
    os._exit(125)
"""

# Run before the program when no network namespace could be made (only under an explicit
# opt-out of the minimum): refuses the events through which ordinary code reaches the network
# or escapes (ctypes could still poke memory; the result says `audit-hook` so no one mistakes
# this for real isolation).
GUARD = r"""
import runpy, sys
BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork",
           "ctypes.", "pty.", "urllib.")
def _hook(event, args):
    if event.startswith(BLOCKED) and event != "socket.__new__":
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "socket.__new__" and args[1] in (2, 10):
        raise PermissionError("sandbox: network sockets are not allowed")
sys.addaudithook(_hook)
program = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(program, run_name="__main__")
"""
