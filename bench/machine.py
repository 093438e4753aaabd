"""What machine a benchmark ran on: the CPU (vendor, model, family/model/stepping, the flags that pick code
paths), the BLAS libraries and the code paths fastnn, PyTorch and Numba chose on it.

    .venv/bin/python bench/machine.py        # prints the description report.py puts at the top

Reports carry this so that numbers from different machines are never compared blindly: the same x86 name
("AMD EPYC", "Intel Xeon") covers CPUs with half-width (double-pumped) and full-width 512-bit units,
or none.
"""
import os
import platform
import sys

# CPU flags (as /proc/cpuinfo spells them) that decide which kernels run: fastnn's hand-written products
# and element-wise clones (avx512f / avx2 + fma), OpenBLAS's and oneDNN's kernel choice, AMX tiles.
CODE_PATH_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
                   "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def parse_cpuinfo(text):
    """The first processor's fields of a /proc/cpuinfo text, plus the number of processors listed."""
    fields, count = {}, 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            count += 1
        if count == 1 and key not in fields:
            fields[key] = value.strip()
    fields["processors"] = count
    return fields


def cpu():
    """A dict: vendor, model_name, family, model, stepping, microcode, flags (all), code_path_flags
    (the present ones of CODE_PATH_FLAGS), missing_flags, logical_cpus, usable_cpus (this process's
    affinity), hypervisor (bool), llvm_cpu (the CPU name LLVM, hence Numba, compiles for)."""
    info = {"vendor": platform.processor() or platform.machine(), "model_name": platform.processor() or "unknown",
            "family": None, "model": None, "stepping": None, "microcode": None, "flags": []}
    try:
        with open("/proc/cpuinfo") as f:
            fields = parse_cpuinfo(f.read())
        info.update(vendor=fields.get("vendor_id", info["vendor"]), model_name=fields.get("model name", "unknown"),
                    family=fields.get("cpu family"), model=fields.get("model"), stepping=fields.get("stepping"),
                    microcode=fields.get("microcode"), flags=fields.get("flags", "").split())
    except OSError:  # not Linux: the names platform gives
        pass
    flags = set(info["flags"])
    info["code_path_flags"] = [f for f in CODE_PATH_FLAGS if f in flags]
    info["missing_flags"] = [f for f in CODE_PATH_FLAGS if f not in flags]
    info["logical_cpus"] = os.cpu_count()
    info["usable_cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["hypervisor"] = "hypervisor" in flags
    try:
        import llvmlite.binding as llvm

        info["llvm_cpu"] = llvm.get_host_cpu_name()
    except ImportError:
        info["llvm_cpu"] = None
    return info


def describe_cpu(info):
    """One markdown line naming the CPU."""
    ident = ", ".join(f"{k} {info[k]}" for k in ("family", "model", "stepping") if info[k] is not None)
    where = " (virtual machine)" if info["hypervisor"] else ""
    return (f"{info['vendor']} {info['model_name']}{where}; {ident}; {info['usable_cpus']} usable of "
            f"{info['logical_cpus']} logical CPUs; LLVM (Numba) target `{info['llvm_cpu']}`; flags: "
            f"{' '.join(info['code_path_flags']) or 'none of interest'}"
            + (f" (not: {' '.join(info['missing_flags'])})" if info["missing_flags"] else ""))


def blas():
    """threadpoolctl's view of the loaded BLAS libraries (after loading SciPy's), as short strings."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_info

    rows = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        owner = os.path.basename(os.path.dirname(lib["filepath"]))
        rows.append(f"{lib['internal_api']} {lib['version']} ({lib.get('architecture')} kernel, "
                    f"{lib.get('threading_layer')}, {lib['num_threads']} threads) in {owner}")
    return rows


def fastnn_paths():
    """The code paths fastnn's compiled kernels take here: whether the hand-written AVX-512 products run
    (the cython extension's own CPU check, which the numba backend calls too) and FASTNN_PORTABLE."""
    try:
        from fastnn._kernels.cython import small_gemm_export

        products = "on" if small_gemm_export.has_avx512() else "off"
    except ImportError as exc:
        products = f"unknown ({exc})"
    return {"avx512_products": products, "FASTNN_PORTABLE": os.environ.get("FASTNN_PORTABLE", "unset")}


def torch_paths():
    """PyTorch's BLAS and the CPU capability its kernels dispatch to (e.g. AVX512), or None."""
    try:
        import torch
    except ImportError:
        return None
    config = torch.__config__.show()
    blas_name = next((part.split("=", 1)[1] for part in config.replace(",", "\n").split()
                      if part.startswith("BLAS_INFO=")), "unknown")
    return {"blas": blas_name, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main():
    print("- CPU: " + describe_cpu(cpu()))
    print("- BLAS: " + "; ".join(blas()))
    print(f"- fastnn: {fastnn_paths()}")
    print(f"- torch: {torch_paths()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
