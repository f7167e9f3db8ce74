"""Handlers run in a sandbox (pd/jail.py, pd/sandbox.py): as a user of
their own, with no credentials in their environment, no access to the
daemon's or other users' files, a process limit, and no write access to
the compile cache.  Each test's handlers probe from inside and write what
they found with handler_log; the test reads it in the process's result."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from appcases import APPS_DIR
from conftest import wait_for
from faults import RUN, record
from tinyapp import ring_app

import pcli
from pd.jail import UID_BASE
from pd.modules import ModuleCache, Refused

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="regions get users of their own only when pd is root")

RING = str(APPS_DIR / "ring_v2.xml")
ON_DISK = "/var/tmp"       # where the files a handler must not reach are made: it has a /tmp of its own
CANARY = "s3cret-canary"
PROBE = r"""
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
// What reading PATH gives: an error, "found the canary", or "read"
static const char* try_read(const char* path) {
    FILE* f = fopen(path, "r");
    if (!f) return strerror(errno);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, "%CANARY%", strlen("%CANARY%")) ? "found the canary" : "read";
}
static int suspicious_environ() {
    int n = 0;
    for (char** e = environ; *e; e++)
        if (strstr(*e, "%CANARY%") || strstr(*e, "redis://") || strncmp(*e, "PSTACK", 6) == 0) n++;
    return n;
}
""".replace("%CANARY%", CANARY)


def once(body: str) -> str:
    """OnInit code run by the first device of each region only."""
    return f"static bool once = false; if (!once) {{ once = true; {body} }}"


def logged(res: dict) -> list[str]:
    return [text for _, _, text in res["log"]]


@pytest.fixture
def other_users_file() -> Iterator[Path]:
    """A 0600 file of an OS user made for the test (removed after)."""
    name = f"pst{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    folder = Path(tempfile.mkdtemp(prefix="pstack-other-", dir=ON_DISK))
    folder.chmod(0o755)
    path = folder / "private.txt"
    try:
        path.write_text(CANARY)
        shutil.chown(path, name, name)
        path.chmod(0o600)
        yield path
    finally:
        shutil.rmtree(folder)
        subprocess.run(["userdel", name], check=True)


@pytest.fixture
def open_cache() -> Iterator[Path]:
    """A compile cache any user could reach (0755), as the daemon's."""
    folder = Path(tempfile.mkdtemp(prefix="pstack-cache-", dir=ON_DISK))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def daemon_folder(cluster) -> Iterator[Path]:
    """The daemons' folder (their logs) on disk, 0700 as a cluster's folder."""
    cluster.folder = Path(tempfile.mkdtemp(prefix="pstack-daemons-", dir=ON_DISK))
    yield cluster.folder
    shutil.rmtree(cluster.folder)


def spare_worker(pd: subprocess.Popen) -> psutil.Process:
    """The spare worker of an idle daemon: the one that runs its next region
    (a daemon makes its first spare when it runs its first region)."""
    assert pcli.run(RING)["state"] == "finished"

    def workers() -> list[psutil.Process]:
        return [p for p in psutil.Process(pd.pid).children()
                if p.status() != psutil.STATUS_ZOMBIE and "pd.worker" in p.cmdline()]
    return wait_for(lambda: len(workers()) == 1 and workers())[0]       # the last region's worker gone


def left_behind(worker: psutil.Process) -> list[psutil.Process]:
    """Processes still running as the uid of `worker`'s sandbox once the worker ended."""
    wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE)
    uid = UID_BASE + worker.pid
    return [p for p in psutil.process_iter(["uids", "status"])
            if p.info["uids"] and p.info["uids"].real == uid and p.info["status"] != psutil.STATUS_ZOMBIE]


def test_a_handler_cannot_read_shadow_other_users_files_or_the_daemons(cluster, daemon_folder, other_users_file):
    cluster.start("e1")
    daemon_log = daemon_folder / "pd-e1.log"
    probe = once(f'handler_log(1, "shadow: %s", try_read("/etc/shadow")); '
                 f'handler_log(1, "other user: %s", try_read("{other_users_file}")); '
                 f'handler_log(1, "daemon log: %s", try_read("{daemon_log}"));')
    res = pcli.run(ring_app("sandbox_files", shared=PROBE, init=probe))
    assert res["state"] == "finished"
    assert logged(res) == ["shadow: Permission denied", "other user: Permission denied",
                           "daemon log: Permission denied"]


def test_a_handler_finds_no_credentials_in_its_environment_or_its_parents(cluster):
    pd = cluster.start("e1", env={"PSTACK_PASSWORD": CANARY})
    probe = once(
        'handler_log(1, "environ: %d suspicious", suspicious_environ()); '
        'handler_log(1, "getenv: %s", getenv("PSTACK_REDIS") ? "set" : "unset"); '
        'char path[64]; '
        'snprintf(path, sizeof path, "/proc/%d/environ", (int)getppid()); '
        'handler_log(1, "worker environ: %s", try_read(path)); '
        'snprintf(path, sizeof path, "/proc/%d/cmdline", (int)getppid()); '
        'handler_log(1, "worker cmdline: %s", try_read(path)); '
        f'handler_log(1, "daemon environ: %s", try_read("/proc/{pd.pid}/environ")); '
        'handler_log(1, "own environ: %s", try_read("/proc/self/environ"));')
    res = pcli.run(ring_app("sandbox_env", shared=PROBE, init=probe))
    assert res["state"] == "finished"
    assert logged(res) == ["environ: 0 suspicious", "getenv: unset", "worker environ: Permission denied",
                           "worker cmdline: read", "daemon environ: Permission denied",
                           "own environ: Permission denied"]
    assert CANARY in Path(f"/proc/{pd.pid}/environ").read_text()     # the canary was there to find


def test_two_regions_running_at_once_have_different_unprivileged_users(cluster):
    cluster.start("e1", slots=2)
    probe = once('handler_log(1, "uid %u gid %u groups %d", (unsigned)getuid(), (unsigned)getgid(), '
                 'getgroups(0, nullptr));')
    res = pcli.run(ring_app("sandbox_uid", shared=PROBE, init=probe), rmap={"d2": 1, "d3": 1})
    assert res["state"] == "finished"
    ids = [tuple(map(int, re.fullmatch(r"uid (\d+) gid (\d+) groups (\d+)", t).groups())) for t in logged(res)]
    assert len(ids) == 2 and ids[0][0] != ids[1][0]
    for uid, gid, groups in ids:
        assert uid >= UID_BASE and gid == uid and groups == 0


def test_a_fork_bomb_is_stopped_by_the_process_limit_and_the_daemon_serves_on(cluster):
    worker = spare_worker(cluster.start("e1"))
    start = time.monotonic()
    res = pcli.run(ring_app("sandbox_forks", shared=PROBE, init=once("for (;;) fork();")))
    seconds = time.monotonic() - start
    assert res["state"] == "failed"
    assert res["reason"] == ("region 0 (engine e1): process limit of 64 exceeded "
                             "(processes and threads of the region's handlers)")
    assert seconds < 15
    wait_for(lambda: not left_behind(worker), timeout=5)    # the bomb's processes: killed
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40
    record("a handler fork bomb (pd --max-procs 64, the default)", f"the process fails: {res['reason']}; "
           "its processes are killed; the daemon serves on", seconds, lost=RUN)


def test_a_handlers_process_that_left_its_group_is_killed_when_the_region_ends(cluster):
    worker = spare_worker(cluster.start("e1"))
    escape = once("if (fork() == 0) { setsid(); for (;;) pause(); }")
    assert pcli.run(ring_app("sandbox_escape", shared=PROBE, init=escape))["state"] == "finished"
    wait_for(lambda: not left_behind(worker), timeout=5)


def test_a_handler_closing_its_channel_to_the_worker_fails_the_process(cluster):
    cluster.start("e1")
    app = ring_app("sandbox_close", shared=PROBE, init=once("for (int fd = 3; fd < 1024; fd++) close(fd); for (;;) {}"))
    res = pcli.run(app)
    assert res["state"] == "failed"
    assert res["reason"] == "region 0 (engine e1): the handlers closed their channel to the worker"
    assert pcli.run(RING)["metrics"]["Delivered messages"] == 40


def test_a_handler_cannot_write_the_compile_cache_which_its_worker_fills(cluster, open_cache):
    cluster.start("e1", env={"PSTACK_CACHE": str(open_cache)})
    probe = once(f'int fd = open("{open_cache}/planted", O_WRONLY | O_CREAT, 0644); '
                 'handler_log(1, "create: %s", fd < 0 ? strerror(errno) : "created"); '
                 f'handler_log(1, "mkdir: %s", mkdir("{open_cache}/_pstack_g_planted", 0755) ? strerror(errno) : "made");')
    app = ring_app(f"sandbox_cache_{uuid.uuid4().hex[:8]}", shared=PROBE, init=probe)
    first = pcli.run(app)
    assert first["state"] == "finished"
    assert logged(first) == ["create: Permission denied", "mkdir: Permission denied"]
    assert first["metrics"]["Compile time (s)"] > 0
    modules = [p.name for p in open_cache.iterdir()]
    assert any(m.startswith("_pstack_g_") for m in modules) and "planted" not in modules
    assert all(p.stat().st_uid == 0 for p in open_cache.iterdir())         # installed by the worker
    assert pcli.run(app)["metrics"]["Compile time (s)"] == 0.0              # the cache serves the next run


def test_handlers_are_compiled_without_root(cluster):
    cluster.start("e1")
    res = pcli.run(ring_app("sandbox_include", shared='#include "/etc/shadow"\n'))
    assert res["state"] == "failed"
    assert "handlers do not compile" in res["reason"] and "Permission denied" in res["reason"]
    assert "root:" not in res["reason"]


def test_the_worker_installs_modules_only_before_application_code_runs(tmp_path):
    cache = ModuleCache(tmp_path)
    loader, app, other = (f"_pstack_{p}_{c * 24}" for p, c in (("loader", "a"), ("g", "b"), ("g", "c")))
    cache.install(loader, b"loader")
    assert cache.fetch(loader) == b"loader" and cache.fetch(app) is None
    cache.install(app, b"app")                 # imported next: its code may run from now on
    with pytest.raises(Refused):
        cache.install(other, b"planted")
    with pytest.raises(Refused):
        cache.fetch(app)
    with pytest.raises(Refused, match="not a module name"):
        ModuleCache(tmp_path).fetch("../../etc/shadow")
    assert sorted(p.name for p in tmp_path.iterdir()) == [app, loader]


TMPFS_PROBE = PROBE + r"""
#include <dirent.h>
#include <string>
#include <sys/statvfs.h>
// Writes PATH in 1 MB blocks until the file system refuses: what it took
// and why it stopped, and the file system's size (the file stays)
static void fill(const char* path) {
    static char block[1 << 20];
    memset(block, 'x', sizeof block);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    long long written = 0;
    ssize_t n = 1;
    while (fd >= 0 && n > 0 && written < (4LL << 30)) {
        n = write(fd, block, sizeof block);
        written += n > 0 ? n : 0;
    }
    struct statvfs fs;
    statvfs(path, &fs);
    handler_log(1, "%s: %lld MB, then %s; size %llu MB", path, written >> 20, strerror(errno),
                (unsigned long long)fs.f_blocks * fs.f_frsize >> 20);
    if (fd >= 0) close(fd);
}
// Makes empty files in DIR until the file system refuses: how many, why it
// stopped, and how many inodes it has
static void files(const char* dir) {
    char path[256];
    int n = 0;
    for (;; n++) {
        snprintf(path, sizeof path, "%s/empty-%d", dir, n);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) break;
        close(fd);
    }
    struct statvfs fs;
    statvfs(dir, &fs);
    handler_log(1, "%s: %d files, then %s; %llu inodes", dir, n, strerror(errno), (unsigned long long)fs.f_files);
}
// The names in DIR, comma-separated
static std::string names(const char* dir) {
    std::string out;
    DIR* d = opendir(dir);
    if (!d) return strerror(errno);
    while (struct dirent* e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            out += (out.empty() ? "" : ",") + std::string(e->d_name);
    closedir(d);
    return out;
}
"""


def host_files_of(uid: int) -> list[str]:
    """Files in the host's /tmp and /dev/shm owned by `uid`."""
    found = subprocess.run(["find", "/tmp", "/dev/shm", "-xdev", "-uid", str(uid)], capture_output=True, text=True)
    return found.stdout.split()      # its errors: files other tests removed meanwhile


def test_a_handlers_tmp_and_shm_are_its_own_sized_by_its_memory_and_gone_when_it_ends(cluster):
    worker = spare_worker(cluster.start("e1"))
    name = f"pstack-left-{uuid.uuid4().hex[:8]}"
    fill = once(f'fill("/tmp/{name}"); fill("/dev/shm/{name}"); files("/dev/shm");')
    start = time.monotonic()
    res = pcli.run(ring_app("sandbox_tmpfs", shared=TMPFS_PROBE, init=fill), memory_mb=64)
    seconds = time.monotonic() - start
    assert res["state"] == "finished"
    # each a quarter of memory_mb: the handler's write past it fails with ENOSPC
    assert logged(res) == [f"/tmp/{name}: 16 MB, then No space left on device; size 16 MB",
                           f"/dev/shm/{name}: 16 MB, then No space left on device; size 16 MB",
                           "/dev/shm: 4094 files, then No space left on device; 4096 inodes"]    # an inode a page
    left_behind(worker)                                    # its worker ended
    assert not Path("/tmp", name).exists() and not Path("/dev/shm", name).exists()
    assert host_files_of(UID_BASE + worker.pid) == []      # nothing a later process of its uid could find
    look = once('handler_log(1, "tmp: %s", names("/tmp").c_str()); '
                'handler_log(1, "shm: %s", names("/dev/shm").c_str());')
    tmp, shm = logged(pcli.run(ring_app("sandbox_tmpfs_after", shared=TMPFS_PROBE, init=look)))
    assert re.fullmatch(r"tmp: pstack-region-\d+-\w+", tmp)     # its own private folder, bound back in
    assert shm == "shm: "
    record("a handler filling /tmp and /dev/shm (memory_mb=64)", "its writes past 16 MB each fail with "
           "ENOSPC (/tmp and /dev/shm are its own tmpfs, a quarter of memory_mb each); both are gone when the "
           "region ends: nothing on the host, a later region finds them empty", seconds)


def test_two_regions_running_at_once_do_not_see_each_others_tmp_or_shm(cluster):
    cluster.start("e1", slots=2)
    mark = once('char path[64]; '
                'snprintf(path, sizeof path, "/tmp/mine-%u", (unsigned)getuid()); close(creat(path, 0644)); '
                'snprintf(path, sizeof path, "/dev/shm/mine-%u", (unsigned)getuid()); close(creat(path, 0644));')
    # a region's 6th receipt is its last: the other region has sent to it, so it has made its files
    look = ('static int receipts = 0; if (++receipts == 6) '
            'handler_log(1, "uid %u tmp %s shm %s", (unsigned)getuid(), names("/tmp").c_str(), '
            'names("/dev/shm").c_str());')
    res = pcli.run(ring_app("sandbox_tmpfs_two", shared=TMPFS_PROBE, init=mark, receive=look),
                   rmap={"d2": 1, "d3": 1})
    assert res["state"] == "finished"
    seen = [re.fullmatch(r"uid (\d+) tmp (\S*) shm (\S*)", t).groups() for t in logged(res)]
    assert len(seen) == 2 and seen[0][0] != seen[1][0]
    for uid, tmp, shm in seen:
        assert sorted(n for n in tmp.split(",") if not n.startswith("pstack-region-")) == [f"mine-{uid}"]
        assert shm == f"mine-{uid}"
