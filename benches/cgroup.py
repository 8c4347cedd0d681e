#!/usr/bin/env python3
"""Run a command under a memory limit and a read-bandwidth throttle (Linux cgroup v1, root).

Usage: python3 benches/cgroup.py [--memory-limit BYTES] [--read-bps BPS] [--file PATH]...
           [--device MAJ:MIN] [--keep-caches] [--timeout S] -- CMD ARGS...

Creates a fresh memory cgroup and a fresh blkio cgroup at the root of their hierarchies
(so no limit of the caller's own cgroup applies), drops the page cache (so no file starts
out cached), runs CMD inside both with its stdout and stderr passed through, then prints to
stderr what the cgroups saw: peak memory (memory.max_usage_in_bytes, page cache included),
how often usage hit the limit (memory.failcnt: reclaim, not an error), OOM kills, and bytes
read from the device. Both cgroups are removed afterwards, also on error or Ctrl-C. The exit
status is CMD's.

The memory limit counts page cache, so the pages of a file that CMD maps are evicted once
the limit is reached and read again from the device, through the throttle. A page is
charged to the cgroup of whoever first read it: pages that another process brings into the
cache during the run are CMD's for free. The throttle applies to one block device: the one
given with --device, else the disk holding the first --file. Each --file's resident bytes
at exit are reported too.

From another script: `run_limited(cmd, memory_limit, read_bps, device)` returns the
CompletedProcess and a `Usage`.
"""
import argparse
import ctypes
import mmap
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

MOUNTS = "/proc/self/mounts"


class CgroupError(RuntimeError):
    """The cgroups cannot be set up on this machine."""


@dataclass
class Usage:
    """What the cgroups measured over one run."""

    peak_bytes: int  # memory.max_usage_in_bytes: anonymous, kernel and page cache
    file_bytes: int  # page cache still charged when the command has exited (memory.stat cache)
    limit_hits: int  # memory.failcnt: times usage reached the limit and memory was reclaimed
    oom_kills: int  # processes the OOM killer ended (memory.oom_control oom_kill)
    read_bytes: int  # bytes read from the device (blkio.throttle.io_service_bytes Read)
    resident: dict  # path -> bytes of that file in the page cache at exit


def v1_mount(controller):
    """Mount point of the cgroup v1 hierarchy holding `controller`, or None."""
    with open(MOUNTS) as mounts:
        for line in mounts:
            _, point, fstype, options = line.split()[:4]
            if fstype == "cgroup" and controller in options.split(","):
                return point
    return None


def require_root_and_v1():
    """(memory mount, blkio mount), or a CgroupError saying what is missing."""
    if os.geteuid() != 0:
        raise CgroupError("creating cgroups and dropping caches needs root")
    memory, blkio = v1_mount("memory"), v1_mount("blkio")
    if memory and blkio:
        return memory, blkio
    with open(MOUNTS) as mounts:
        has_v2 = any(line.split()[2] == "cgroup2" for line in mounts)
    hint = " (cgroup v2 is mounted: memory.max and io.max are not supported yet)" if has_v2 else ""
    raise CgroupError(f"no cgroup v1 hierarchy with the memory and blkio controllers{hint}")


def disk_of(path):
    """MAJ:MIN of the whole disk holding `path` (throttle rules apply to disks, not partitions)."""
    dev = os.stat(path).st_dev
    sysfs = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    if not os.path.exists(sysfs):
        raise CgroupError(f"{path} is not on a block device ({os.major(dev)}:{os.minor(dev)}); pass --device")
    if os.path.exists(os.path.join(sysfs, "partition")):
        sysfs = os.path.join(os.path.realpath(sysfs), "..")
    with open(os.path.join(sysfs, "dev")) as f:
        return f.read().strip()


def resident_bytes(path):
    """Bytes of `path` in the page cache now (mincore over a fresh read-only mapping)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    page = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap failed", path)
        try:
            vec = ctypes.create_string_buffer((size + page - 1) // page)
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed", path)
            return sum(b & 1 for b in vec.raw) * page
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_caches():
    """Write back dirty pages and drop the page cache, dentries and inodes."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


class LimitedGroups:
    """A fresh memory cgroup and blkio cgroup, set up on enter and removed on exit."""

    def __init__(self, memory_limit, read_bps, device):
        memory_root, blkio_root = require_root_and_v1()
        name = f"lantern-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.memory = os.path.join(memory_root, name)
        self.blkio = os.path.join(blkio_root, name)
        self.memory_limit, self.read_bps, self.device = memory_limit, read_bps, device

    def __enter__(self):
        os.mkdir(self.memory)
        try:
            os.mkdir(self.blkio)
            if self.memory_limit is not None:
                self._write(self.memory, "memory.limit_in_bytes", self.memory_limit)
            if self.read_bps is not None:
                self._write(self.blkio, "blkio.throttle.read_bps_device", f"{self.device} {int(self.read_bps)}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for path in (self.memory, self.blkio):
            if os.path.isdir(path):
                self._remove(path)

    def join(self):
        """Move the calling process into both cgroups (meant for preexec_fn)."""
        pid = str(os.getpid())
        self._write(self.memory, "cgroup.procs", pid)
        self._write(self.blkio, "cgroup.procs", pid)

    def usage(self, files=()):
        """What the cgroups saw so far; `files` get their resident bytes."""
        stat = dict(line.split() for line in self._read(self.memory, "memory.stat").splitlines())
        oom = dict(line.split() for line in self._read(self.memory, "memory.oom_control").splitlines())
        return Usage(
            peak_bytes=int(self._read(self.memory, "memory.max_usage_in_bytes")),
            file_bytes=int(stat["cache"]),
            limit_hits=int(self._read(self.memory, "memory.failcnt")),
            oom_kills=int(oom.get("oom_kill", 0)),
            read_bytes=self._device_reads(),
            resident={path: resident_bytes(path) for path in files},
        )

    def _device_reads(self):
        """Read bytes of this cgroup's I/O to the device (all devices when none is set)."""
        total = 0
        for line in self._read(self.blkio, "blkio.throttle.io_service_bytes").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "Read" and self.device in (None, fields[0]):
                total += int(fields[2])
        return total

    @staticmethod
    def _remove(path):
        """rmdir a cgroup, first killing whatever the command left running in it."""
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except OSError:
                for pid in LimitedGroups._read(path, "cgroup.procs").split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
        os.rmdir(path)

    @staticmethod
    def _read(group, name):
        with open(os.path.join(group, name)) as f:
            return f.read().strip()

    @staticmethod
    def _write(group, name, value):
        with open(os.path.join(group, name), "w") as f:
            f.write(str(value))


def run_limited(cmd, memory_limit=None, read_bps=None, device=None, *, files=(), timeout=None,
                capture_output=False, keep_caches=False):
    """Run `cmd` in fresh cgroups; return (CompletedProcess, Usage).

    memory_limit: bytes, page cache included (None: no limit, usage is still measured).
    read_bps: read bytes per second allowed from `device` ("MAJ:MIN"; None: no throttle).
    device: defaults to the disk holding files[0]. files: report their resident bytes at exit.
    The page cache is dropped first unless keep_caches. A timeout kills cmd and raises
    subprocess.TimeoutExpired, as subprocess.run does; the cgroups are removed either way.
    """
    if device is None and files:
        device = disk_of(files[0])
    if read_bps is not None and device is None:
        raise CgroupError("a read throttle needs a device: pass device or files")
    with LimitedGroups(memory_limit, read_bps, device) as groups:
        if not keep_caches:
            drop_caches()
        proc = subprocess.run(cmd, preexec_fn=groups.join, timeout=timeout, capture_output=capture_output, text=capture_output)
        return proc, groups.usage(files)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], usage="%(prog)s [options] -- CMD ARGS...")
    ap.add_argument("--memory-limit", type=lambda s: int(float(s)), help="bytes, page cache included (e.g. 64e6)")
    ap.add_argument("--read-bps", type=lambda s: int(float(s)), help="read bytes per second from the device (e.g. 250e6)")
    ap.add_argument("--device", help="MAJ:MIN of the disk to throttle (default: the one holding the first --file)")
    ap.add_argument("--file", action="append", default=[], help="a file CMD reads; reports its resident bytes at exit")
    ap.add_argument("--keep-caches", action="store_true", help="do not drop the page cache before the run")
    ap.add_argument("--timeout", type=float, help="seconds before CMD is killed")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    if not args.cmd:
        ap.error("no command given after --")
    return args


def report(usage, memory_limit, device):
    """The usage as a few lines for stderr."""
    mb = 1e6
    limit = f"{memory_limit / mb:.1f} MB" if memory_limit is not None else "none"
    lines = [
        f"cgroup: peak memory {usage.peak_bytes / mb:.1f} MB (limit {limit}), page cache at exit {usage.file_bytes / mb:.1f} MB",
        f"cgroup: limit reached {usage.limit_hits} times, OOM kills {usage.oom_kills}",
        f"cgroup: read {usage.read_bytes / mb:.1f} MB from {device or 'all devices'}",
    ]
    lines += [f"cgroup: {path}: {n / mb:.1f} MB resident at exit" for path, n in usage.resident.items()]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    try:
        device = args.device or (disk_of(args.file[0]) if args.file else None)
        proc, usage = run_limited(args.cmd, args.memory_limit, args.read_bps, device, files=args.file,
                                  timeout=args.timeout, keep_caches=args.keep_caches)
    except subprocess.TimeoutExpired:
        sys.exit(f"cgroup.py: killed after {args.timeout} s")
    except (CgroupError, OSError, subprocess.SubprocessError) as e:
        sys.exit(f"cgroup.py: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
    print(report(usage, args.memory_limit, device), file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
