"""Shared timing, memory and machine-FLOP/s helpers of the ``bench/`` scripts.

Kept apart so every script times the same way: device-synchronised wall clock, warm-up steps discarded, the
median (with p10/p90) of the measured steps reported, peak memory from the CUDA allocator or the process RSS;
an external command (:func:`run_command`) by its wall clock and GNU time's peak RSS.
"""

from __future__ import annotations

import functools
import json
import platform
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], object], device: torch.device, steps: int, warmup: int) -> dict:
    """Run ``warmup`` untimed then ``steps`` timed calls of ``step``; seconds per call as median/p10/p90."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    ordered = sorted(times)
    return {
        "median_s": statistics.median(times),
        "p10_s": ordered[int(0.1 * (len(ordered) - 1))],
        "p90_s": ordered[round(0.9 * (len(ordered) - 1))],
        "steps": steps,
    }


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator peak, or the process RSS high-water mark on Linux)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # writing 5 to clear_refs resets VmHWM (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mib(device: torch.device) -> dict:
    """Peak memory since the last reset: CUDA ``max_memory_allocated``, else the process peak RSS (VmHWM)."""
    if device.type == "cuda":
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20, "memory_kind": "cuda_allocated"}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return {"peak_memory_mib": int(line.split()[1]) / 1024, "memory_kind": "process_peak_rss"}
    except OSError:
        pass
    return {"peak_memory_mib": None, "memory_kind": "unavailable"}


GNU_TIME = "/usr/bin/time"
"""GNU time: its ``%M`` is the peak RSS of the one command it starts. Measured from a large Python process instead
(``os.wait4`` or ``getrusage(RUSAGE_CHILDREN)``), a child's peak starts at that process's size: the high-water mark
survives the fork and the ``exec``."""


@functools.cache
def command_memory_method() -> str:
    """How :func:`run_command` measures a command's peak memory on this machine (GNU time, or not at all)."""
    try:
        version = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return f"not measured (no {GNU_TIME})"
    if "GNU" not in version.stdout + version.stderr:
        return f"not measured ({GNU_TIME} is not GNU time)"
    return f"peak RSS of the command ({GNU_TIME} -f %M, as /usr/bin/time -v reports it)"


@dataclass(frozen=True)
class CommandRun:
    """One external command run to completion."""

    seconds: float
    """Wall clock from start to exit, start-up and file reading included."""
    peak_memory_mib: float | None
    """Peak RSS in MiB (:func:`command_memory_method`; ``None`` where it cannot be measured)."""


def run_command(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> CommandRun:
    """Run ``argv`` with its stdout and stderr in ``log``; a non-zero exit raises ``RuntimeError`` naming the
    command and the log's last line."""
    measured = command_memory_method().startswith("peak")
    memory_file = log.with_name(f"{log.name}.maxrss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(memory_file), *argv] if measured else list(argv)
    started = time.perf_counter()
    with log.open("wb") as output:
        returncode = subprocess.run(wrapped, stdout=output, stderr=subprocess.STDOUT, env=env, check=False).returncode
    seconds = time.perf_counter() - started
    if returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"{shlex.join(argv)} exited with {returncode}: {lines[-1]} (log: {log})")
    return CommandRun(seconds, int(memory_file.read_text().split()[-1]) / 1024 if measured else None)


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> dict:
    """Achieved FLOP/s of a large square matmul (2 n^3 FLOPs): the machine's practical peak for ``dtype``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    timing = time_steps(lambda: torch.mm(a, b), device, steps=repeats, warmup=2)
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "flops_per_s": 2 * size**3 / timing["median_s"]}


def machine_info(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


def emit_report(report: dict, output: Path | None) -> None:
    """Print the benchmark's JSON and, when asked, write it to ``output`` as well."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
