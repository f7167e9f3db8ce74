"""Starting a region's sandbox (pd/sandbox.py) and cleaning up after it.

The sandbox is a fresh `python -m pd.sandbox`, exec'd by the region worker
with an environment of its own (PATH, LANG, HOME and TMPDIR: its private
folder, PYTHONPATH: pstack's source), its private folder as working
directory, no standard streams, and one socketpair to the worker as its
only open file: it never sees the Redis URL, the password or any other
PSTACK_* variable, and holds no connection to Redis.

When pd runs as root, the sandbox runs as a user of its own, uid = gid =
UID_BASE + the worker's OS pid, with no supplementary groups.  It starts
as root, so that it can import Python and pstack wherever they are
installed (pyenv under /root, say), and becomes its user (become()) before
it reads its job (as root it reads only its limits, which size its /tmp):
no application code or data ever meets root, and a process exec'd afresh
holds nothing secret to start with.  OS pids are
unique among the processes running on a host, so no two regions running at
once share a uid, even regions of two daemons on one host: they cannot
signal, ptrace or read each other, nor read the daemon's files, other
users' private files or /etc/shadow; RLIMIT_NPROC, which counts the
processes of a uid, then bounds one region's processes.  After the worker
ends, pd kills whatever still runs as that uid (a handler's process that
left the process group) and removes the private folder (reap()).  When pd
is not root it cannot switch users: the sandbox runs as pd's user, still
without credentials in its environment, but able to read that user's files
and without a process limit (pd warns once at start).

Each sandbox has a private /tmp and /dev/shm (private_tmp()): before it
becomes its user it enters a mount namespace of its own and mounts a fresh
tmpfs on each, so whatever its handlers write there is seen by no other
process and is freed by the kernel when the namespace's last process ends
(the sandbox, or pd's reap() of its uid).  Its private folder is on the
host's disk (the worker writes into it; g++ compiles in it): when it lies
under /tmp it is bind-mounted back at the same path.  pd not root: the
namespace comes with an unprivileged user namespace (uid and gid mapped to
themselves), if the kernel allows them; else the sandbox keeps the host's
/tmp and /dev/shm (pd warns once at start).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from .channel import Channel

UID_BASE = 0x6000_0000           # + a pid (< 2**22): far above any real or container user's uid
ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
CLONE_NEWNS, CLONE_NEWUSER = 0x0002_0000, 0x1000_0000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x4_0000
CAPABILITY_VERSION_3 = 0x2008_0522
PRIVATE_DIRS = ("/tmp", "/dev/shm")
TMPFS_SHARE = 4                  # each of PRIVATE_DIRS holds at most memory_mb / TMPFS_SHARE
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
FOLDER = "pstack-region-"


def isolated() -> bool:
    """Whether regions get users of their own (pd runs as root)."""
    return os.geteuid() == 0


def sandbox_uid(worker_pid: int) -> int | None:
    """The uid of the sandbox of the worker with OS pid `worker_pid`, if it gets one of its own."""
    return UID_BASE + worker_pid if isolated() else None


def folder_prefix(worker_pid: int) -> str:
    """The start of the name of a worker's sandbox's private folder (in the temporary folder)."""
    return f"{FOLDER}{worker_pid}-"


class Jail:
    """A worker's sandbox process, started at once (so its imports are done
    when the job comes) and told its job over `channel`."""

    def __init__(self) -> None:
        remove_stale_folders()
        self.uid = sandbox_uid(os.getpid())
        self.home = Path(tempfile.mkdtemp(prefix=folder_prefix(os.getpid())))      # 0700
        if self.uid is not None:
            os.chown(self.home, self.uid, self.uid)
        ours, theirs = socket.socketpair()
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-m", "pd.sandbox", str(os.getpid()), str(theirs.fileno()),
                 "-" if self.uid is None else str(self.uid)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), cwd=self.home, env=self.environment())
        self.channel = Channel(ours)

    def environment(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", SAFE_PATH), "LANG": "C.UTF-8", "HOME": str(self.home),
               "TMPDIR": str(self.home), "PYTHONPATH": str(ROOT)}
        if "CXX" in os.environ:
            env["CXX"] = os.environ["CXX"]        # part of the compile cache's key
        return env

    def tasks(self) -> int:
        """Processes and threads running as the sandbox's uid (what RLIMIT_NPROC counts)."""
        return sum(_threads(pid) for pid in _pids_of(self.uid)) if self.uid is not None else 0

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)     # pd's reap() does it for a worker killed first


def _pids_of(uid: int) -> list[str]:
    pids = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.append(entry.name)
        except OSError:                      # ended meanwhile
            pass
    return pids


def _threads(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[17])    # num_threads, after the command name
    except (OSError, IndexError, ValueError):
        return 0


def reap(worker_pid: int) -> None:
    """After a worker ended: end every process still running as its
    sandbox's uid (kill(-1) from that uid reaches exactly those), and
    remove its private folder."""
    uid = sandbox_uid(worker_pid)
    if uid is not None and _pids_of(uid):
        # an environment of its own: the processes it kills could read its /proc/PID/environ
        subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[], env={"PATH": SAFE_PATH},
                       check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for folder in Path(tempfile.gettempdir()).glob(folder_prefix(worker_pid) + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_folders() -> None:
    """Private folders of workers that are gone (their daemon was killed
    before it could reap them)."""
    for folder in Path(tempfile.gettempdir()).glob(FOLDER + "*"):
        pid = folder.name[len(FOLDER):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def exited(proc: subprocess.Popen) -> bool:
    """Whether `proc` ended, leaving it unreaped (its pid, hence its
    sandbox's uid, cannot be reused until proc.wait())."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def become(uid: int) -> None:
    """Be user `uid` (and group `uid`, and no other group) for good."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def tmpfs_options(memory_mb: int) -> str:
    """The mount options of a private /tmp or /dev/shm of a region that may
    use `memory_mb` MB (0: no limit, the kernel's defaults: half the host's
    memory).  tmpfs pages are not in RLIMIT_DATA: size= is their bound; an
    inode a page bounds the kernel memory of a tmpfs full of empty files."""
    kb = memory_mb * 1024 // TMPFS_SHARE
    return f"mode=1777,size={kb}k,nr_inodes={kb // 4}" if memory_mb else "mode=1777"


def private_tmp(memory_mb: int) -> bool:
    """Give this process (and what it starts) a /tmp and a /dev/shm of its
    own, fresh tmpfs sized by tmpfs_options(), its working directory still
    reachable at the same path; False (nothing changed) where the kernel
    refuses a namespace, OSError if a mount fails.  Call it before
    become(): it needs root, or, not root, an unprivileged user namespace
    (whose capabilities it drops again)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own_users = not isolated()
    if not _unshare(libc, own_users):
        return False
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    home = os.getcwd()
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)      # nothing we mount reaches the host
    for folder in filter(os.path.isdir, PRIVATE_DIRS):     # a container may have no /dev/shm
        _mount(libc, "tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(memory_mb))
    if not _same(os.fstat(here), home):                 # the private folder was under /tmp
        os.makedirs(home, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{here}", home, None, MS_BIND)
        os.chdir(home)
    os.close(here)
    if own_users:
        _drop_capabilities(libc)
    return True


def _unshare(libc: ctypes.CDLL, own_users: bool) -> bool:
    """Into a mount namespace of our own (and a user namespace where we are
    not root, our uid and gid mapped to themselves); False if refused."""
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNS | (CLONE_NEWUSER if own_users else 0)):
        return False
    if own_users:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            Path(f"/proc/self/{name}").write_text(text)
    return True


def _same(st: os.stat_result, path: str) -> bool:
    """Whether `path` is the file `st` was taken of."""
    try:
        return os.path.samestat(st, os.stat(path))
    except FileNotFoundError:
        return False


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def c(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None
    if libc.mount(c(source), c(target), c(fstype), flags, c(data)):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """None of the capabilities a new user namespace gave us (handlers could
    unmount the private /tmp with them)."""
    if libc.capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), (_CapData * 2)()):
        raise OSError(ctypes.get_errno(), "capset")


def private_tmp_trouble() -> str | None:
    """Why sandboxes here get no private /tmp and /dev/shm, if they do not
    (tried in a child process: a namespace, once entered, cannot be left)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(0 if private_tmp(1) else 1)
        except BaseException:
            os._exit(2)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return None
    if code == 1:
        how = "" if isolated() else " in an unprivileged user namespace"
        return f"handlers share this host's /tmp and /dev/shm: the kernel refused a mount namespace{how}"
    return ("sandboxes here cannot mount their private /tmp and /dev/shm: their regions will fail "
            "(tracebacks in this log)")


def die_with_parent(parent: int | None = None) -> None:
    """End with the parent (Linux: PR_SET_PDEATHSIG), and at once if it is
    gone already (we were reparented: to init, or to a subreaper)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1 or (parent is not None and os.getppid() != parent):
        os._exit(1)


def no_new_privs() -> None:
    """Nothing this process execs can gain privileges (set-uid programs, file capabilities)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
