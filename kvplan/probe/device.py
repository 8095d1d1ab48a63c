"""The local device: which one, how much memory it has free, and which database GPU it is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from kvplan.errors import InputError
from kvplan.units import GIB, MIB

# nvidia-smi names -> database names; the first pattern that matches wins.
_GPU_NAMES = (
    (r"h100.*nvl", "h100-nvl"), (r"h100.*pcie", "h100-pcie"), (r"h100", "h100-sxm"), (r"h200", "h200"),
    (r"\bh20\b", "h20"), (r"gb200", "gb200"), (r"b200", "b200"),
    (r"a100.*pcie.*80|a100.*80.*pcie", "a100-80gb-pcie"), (r"a100.*pcie", "a100-40gb-pcie"),
    (r"a100.*80", "a100-80gb-sxm"), (r"a100", "a100-40gb-sxm"), (r"l40s", "l40s"), (r"\bl4\b", "l4"),
    (r"a10g", "a10g"), (r"\ba10\b", "a10"), (r"\bt4\b", "t4"), (r"v100.*16", "v100-16gb"), (r"v100", "v100"),
    (r"4090", "rtx-4090"), (r"3090", "rtx-3090"), (r"mi325", "mi325x"), (r"mi300", "mi300x"),
)
CPU_CAP_BYTES = 2**30  # on the CPU the point is exact bytes, not filling host memory


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    name: str
    total_bytes: int
    free_bytes: int
    nvml_total_bytes: int | None
    nvml_used_bytes: int | None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def resolve_device(spec: str | None) -> torch.device:
    """'cuda:N' or 'cpu'; None picks cuda:0 when CUDA is present, else the CPU."""
    if spec is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(f"--device '{spec}' is not a device; use cpu or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            choices = "" if not count else " or cuda:0" if count == 1 else f" or cuda:0..cuda:{count - 1}"
            raise InputError(f"--device {spec} does not exist: this machine has {count} CUDA device(s); "
                             f"use --device cpu{choices}")
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise InputError(f"--device '{spec}' is not supported; use cpu or cuda:N")
    return device


def _nvml(index: int) -> tuple[int | None, int | None]:
    """(total, used) from NVML, or (None, None) where NVML is absent: that is not an error."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            memory = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            return int(memory.total), int(memory.used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no device: NVML is simply absent
        return None, None


def host_memory() -> tuple[int, int]:
    """(total, available) host memory from /proc/meminfo; (0, 0) where it is not readable."""
    try:
        info = dict(re.findall(r"^(\w+):\s+(\d+) kB", Path("/proc/meminfo").read_text(), flags=re.M))
        return int(info["MemTotal"]) * 1024, int(info["MemAvailable"]) * 1024
    except (OSError, KeyError):
        return 0, 0


def margin_bytes(total: int, cuda: bool) -> int:
    """What the probe leaves alone: 2% of a GPU (at least 512 MiB) for the CUDA context and
    workspaces, 10% of host memory (at least 1 GiB) for everything else the machine runs."""
    return max(512 * MIB, total // 50) if cuda else max(GIB, total // 10)


def spare_bytes(info: DeviceInfo) -> int:
    """Free memory less the margin: the most the probe may allocate."""
    return info.free_bytes - margin_bytes(info.total_bytes, info.is_cuda)


def device_info(device: torch.device) -> DeviceInfo:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        nvml_total, nvml_used = _nvml(device.index or 0)
        return DeviceInfo(device, torch.cuda.get_device_name(device), int(total), int(free), nvml_total, nvml_used)
    total, free = host_memory()
    return DeviceInfo(device, "CPU (host memory)", total, free, None, None)


def database_gpu_name(device_name: str) -> str | None:
    lowered = device_name.lower()
    return next((name for pattern, name in _GPU_NAMES if re.search(pattern, lowered)), None)
