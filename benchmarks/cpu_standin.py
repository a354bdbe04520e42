"""Run a command on a stand-in for a slower CPU class: instruction sets capped, CPU time throttled to a speed.

    python benchmarks/cpu_standin.py --isa avx2 --fp32-gflops 46 -- varsep demo
    python benchmarks/cpu_standin.py --isa avx2 -- python -m pytest            # caps only, no throttle

Why: this project's users have three classes of CPU (AMX, AVX-512-BF16, AVX2 only), and a session runs on
one of them. Capping the instruction sets (``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR``)
makes PyTorch and oneDNN take the kernels of the smaller class, but a bigger CPU still runs them faster than
the real class would: emulated AVX2 ran an fp32 2048² matrix product at 67–76 GFLOP/s on 2 cores of AMX and
Zen 4 machines, where a real 2-core AVX2 EPYC ran it at 46. ``--fp32-gflops`` closes that gap: it measures
the capped matrix product here, then runs the command in a cgroup whose CPU quota is the ratio of the two
(the ``cpu`` controller of cgroup v1, or ``cpu.max`` of cgroup v2; needs root), measures the product again
inside it and corrects the quota until the product runs within 5 % of the target (threads that wait for
each other in a throttled period lose more than the quota alone says). Throttling slows memory-bound work as
much as compute, so the stand-in errs on the slow side.

Prints one JSON object on stderr before the command runs (the caps, the quota, the product's speed before
and inside the throttle), passes ``VARSEP_CPU_STANDIN`` to the command (benchmarks record it in their
``hardware``), and exits with the command's exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import STANDIN  # noqa: E402

ISA_CAPS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"},
    "avx512-bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},  # AVX-512 with bf16, no AMX
}
PERIOD_US = 10_000  # a short CFS period: threads are held back in slices of a few ms, not 100 ms
GROUP = "varsep-cpu-standin"
CALIBRATIONS = 4  # measurements inside the throttle, at most, to bring the product within 5 % of the target
MEASURE = ("import sys, torch; sys.path.insert(0, sys.argv[1]); torch.set_num_threads(int(sys.argv[2])); "
           "from bench_waveeq import matmul_peak; print(max(matmul_peak(torch.float32) for _ in range(5)))")


def fp32_gflops(env: dict[str, str], threads: int, cgroup_procs: Path | None = None) -> float:
    """The fp32 2048² matrix product's GFLOP/s in a child process with ``env``, in the cgroup: the best of 5, as
    other guests of a shared host slow some of them (seen here: 41–77 GFLOP/s on an idle machine)."""
    join = (lambda: cgroup_procs.write_text(str(os.getpid()))) if cgroup_procs else None
    out = subprocess.run([sys.executable, "-c", MEASURE, str(Path(__file__).parent), str(threads)], env=env,
                         capture_output=True, text=True, check=True, preexec_fn=join)
    return float(out.stdout.strip().splitlines()[-1])


def make_cgroup(cpus: float) -> Path:
    """A cgroup allowed ``cpus`` CPUs' worth of time per period; returns the file a process joins it by."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.is_file():
        if "cpu" not in v2.read_text().split():
            raise SystemExit("cgroup v2 without the cpu controller: cannot throttle here")
        group = Path("/sys/fs/cgroup") / GROUP
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{round(cpus * PERIOD_US)} {PERIOD_US}")
        return group / "cgroup.procs"
    group = Path("/sys/fs/cgroup/cpu") / GROUP
    try:
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(round(cpus * PERIOD_US)))
    except OSError as err:
        raise SystemExit(f"cannot make a throttled cgroup in {group.parent} ({err}): run as root on Linux, "
                         "or leave out --fp32-gflops") from err
    return group / "cgroup.procs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", choices=sorted(ISA_CAPS), required=True, help="the class whose kernels to use")
    parser.add_argument("--fp32-gflops", type=float,
                        help="throttle to this fp32 2048² matrix-product speed (a real 2-core AVX2 EPYC: 46)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPUs the command may use")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    env = {**os.environ, **ISA_CAPS[args.isa]}
    record: dict = {"isa": args.isa, "caps": ISA_CAPS[args.isa]}
    procs = None
    if args.fp32_gflops:
        capped = fp32_gflops(env, args.threads)
        share = min(1.0, args.fp32_gflops / capped)
        for _ in range(CALIBRATIONS):  # threads waiting on each other in a throttled period lose more than the
            procs = make_cgroup(share * args.threads)  # quota says: correct the share by what is measured
            throttled = fp32_gflops(env, args.threads, procs)
            if abs(throttled / args.fp32_gflops - 1) < 0.05 or share == 1.0:
                break
            share = min(1.0, share * args.fp32_gflops / throttled)
        record |= {"fp32_gflops_capped": round(capped, 1), "target_fp32_gflops": args.fp32_gflops,
                   "cpu_share": round(share, 3), "quota_cpus": round(share * args.threads, 3),
                   "fp32_gflops_throttled": round(throttled, 1)}
    env[STANDIN] = json.dumps(record)
    print(json.dumps({"cpu_standin": record}), file=sys.stderr, flush=True)
    join = (lambda: procs.write_text(str(os.getpid()))) if procs else None
    sys.exit(subprocess.run(command, env=env, preexec_fn=join).returncode)


if __name__ == "__main__":
    main()
