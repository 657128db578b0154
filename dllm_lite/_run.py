"""The side concerns of a training run, kept out of the loop in train.py so that it reads top to bottom.

- `Ranks`: this process's place in a torchrun group (or a group of one), and the
  collective operations the loop needs: a sum over ranks, an agreement (a maximum) and a
  gather (every rank's random state, for the checkpoint).
- `Clock`: the run's wall time, resumed across restarts, and the `train.max_minutes` cap:
  how much of it is spent and whether the next step still leaves room for the closing
  evaluation and checkpoint. Time spent evaluating and saving is measured, so the cap can
  keep room for it.
- `Interval`: the training losses since the last log line, summed on the device and read
  on the host only when a line is written, plus the tokens/s of that interval.
- `StopSignals`: SIGINT / SIGTERM ask the loop to stop after the current step.
- `MetricsFile`: metrics.jsonl, one JSON object per log line and per evaluation.
- `RunLock`: an exclusive lock on the run folder for the run's lifetime, so that two runs
  started on one `train.out_dir` cannot interleave their checkpoints and metrics.
"""

import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows: no flock; the run folder is then not locked
    fcntl = None


class Ranks:
    """This process's rank among `world_size` (1 without torchrun) and the collectives the loop uses."""

    def __init__(self, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size = rank, world_size
        self.distributed = world_size > 1
        self.main = rank == 0
        # the stop agreement travels on the CPU: a gloo group beside NCCL on a GPU
        self.stop_group = dist.new_group(backend="gloo") if self.distributed and device.type == "cuda" else None

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over all ranks (a copy; `value` itself is left alone)."""
        if self.distributed:
            value = value.clone()
            dist.all_reduce(value)
        return value

    def agree(self, flags: torch.Tensor) -> torch.Tensor:
        """The element-wise maximum of a small CPU tensor over all ranks, so every rank acts alike."""
        if self.distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.stop_group)
        return flags

    def gather(self, obj) -> "list | None":
        """Every rank's `obj` (plain data and CPU tensors), as a list on rank 0 and None elsewhere."""
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size if self.main else None
        dist.gather_object(obj, gathered, dst=0, group=self.stop_group)
        return gathered

    def log(self, message: str) -> None:
        """Print one line above the progress bar, on rank 0 only."""
        if self.main:
            tqdm.write(message, file=sys.stdout)


class Clock:
    """Wall time since the run began (across resumes) and the `max_minutes` cap, in seconds."""

    def __init__(self, max_minutes, elapsed_before: float = 0.0, started: "float | None" = None):
        self.cap = None if max_minutes is None else 60 * max_minutes
        self.before, self.start = elapsed_before, time.time() if started is None else started
        self.costs = {"eval": 0.0, "save": 0.0}  # seconds the last evaluation and checkpoint took
        self.share = self.share_of_cap(self.elapsed())  # of the cap spent, as the lr cosine last saw it

    @contextmanager
    def aside(self, kind: str, interval: "Interval"):
        """Time the block as an evaluation or a checkpoint (kind "eval" / "save"): the cap keeps room for
        the next one, and the interval's tokens/s leaves it out."""
        start = time.time()
        yield
        self.costs[kind] = time.time() - start
        interval.pause(self.costs[kind])

    def elapsed(self) -> float:
        """Seconds of the run so far, earlier invocations included."""
        return self.before + time.time() - self.start

    def share_of_cap(self, elapsed: float) -> float:
        """How much of the cap is spent (0 without one), with the closing evaluation and checkpoint set
        aside: the learning rate's cosine ends where the cap stops the run (train.lr_at)."""
        if self.cap is None:
            return 0.0
        return elapsed / max(self.cap - self.costs["eval"] - self.costs["save"], 1e-9)

    def out_of_time(self, elapsed: float, eval_due: bool, save_due: bool) -> bool:
        """Would another step overrun the cap, given an evaluation / checkpoint due now and the closing ones?"""
        if self.cap is None:
            return False
        due = (self.costs["eval"] if eval_due else 0.0) + (self.costs["save"] if save_due else 0.0)
        return elapsed + due + self.costs["eval"] + self.costs["save"] > self.cap


class Interval:
    """The loss of the steps since the last log line, kept on the device (one host read per log line)."""

    def __init__(self, device, loss_sum: float = 0.0, steps: int = 0, step: int = 0):
        self.loss_sum = torch.tensor(loss_sum, device=device)
        self.steps = steps
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)  # ever a NaN/inf loss or gradient
        self.started, self.first_step = time.time(), step

    def add(self, step_loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Count one optimiser step, without reading anything back to the host."""
        self.loss_sum += step_loss
        self.steps += 1
        self.nonfinite |= ~torch.isfinite(step_loss) | ~torch.isfinite(grad_norm)

    def diverged(self, ranks: Ranks) -> bool:
        """Has any rank seen a NaN or infinite loss or gradient norm? (a host read)"""
        return ranks.sum(self.nonfinite.float()).item() > 0

    def pause(self, seconds: float) -> None:
        """Leave `seconds` (an evaluation, a checkpoint) out of the interval's tokens/s."""
        self.started += seconds

    def close(self, step: int, ranks: Ranks, tokens_per_step: int) -> tuple[float, float]:
        """(mean loss over ranks and steps, tokens/s) of the interval; then start a new one at `step`."""
        now = time.time()
        mean = ranks.sum(self.loss_sum).item() / ranks.world_size / self.steps
        tokens_per_s = tokens_per_step * (step - self.first_step) / max(now - self.started, 1e-9)
        self.loss_sum.zero_()
        self.steps, self.started, self.first_step = 0, now, step
        return mean, tokens_per_s

    def average_over(self, ranks: Ranks) -> None:
        """Replace this rank's sum by the ranks' average, so a checkpoint resumes with the same mean."""
        if ranks.distributed:
            self.loss_sum = ranks.sum(self.loss_sum) / ranks.world_size


class Aborted(KeyboardInterrupt):
    """A second SIGINT / SIGTERM: the run stops at once, without a closing checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """While active, SIGINT / SIGTERM only ask the loop to stop after the current step (a second one aborts).

    `signum` is the number of the first signal that arrived (None while none has).
    """

    def __init__(self):
        self.requested = False
        self.signum = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise Aborted(signum)
        self.requested, self.signum = True, signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class MetricsFile:
    """<out_dir>/metrics.jsonl: appended to by rank 0, one JSON object per line."""

    def __init__(self, out_dir: Path, main: bool):
        self.path, self.main = Path(out_dir) / "metrics.jsonl", main

    def forget_after(self, step: int, read) -> None:
        """On resume: drop the records past the checkpoint's step (`read` parses the file)."""
        if self.main and self.path.exists():
            kept = [r for r in read(self.path.parent) if r["step"] <= step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        """Append one record (rank 0 only)."""
        if self.main:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


class FolderInUseError(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """An exclusive `flock` on <out_dir>/.run.lock, held from before the folder is looked at until the run ends.

    The lock file holds the holder's PID, so a second run is refused with one line naming it. The
    operating system releases the lock when its process dies (kill -9 included), so there is
    never a stale lock to clean up. Only rank 0 of a torchrun group takes it (`main`). On a
    platform without `fcntl` (Windows) nothing is locked.
    """

    def __init__(self, out_dir: Path, main: bool = True):
        self.path, self.main, self.file = Path(out_dir) / ".run.lock", main, None

    def __enter__(self):
        if not self.main or fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            self.file = None
            raise FolderInUseError(f"{self.path.parent} is in use by another run (PID {holder}); wait for it to end, "
                                   f"stop it, or set train.out_dir to another folder") from None
        self.file.truncate(0)
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.close()  # closing the file releases the lock
            self.file = None


def count(n: int) -> str:
    """25933312 -> '25.9M', 831000 -> '0.83M', 36500 -> '36.5K'."""
    return f"{n / 1e6:.1f}M" if n >= 1e7 else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def quiet_progress(rank: int) -> bool:
    """No progress bar on ranks other than 0, or when TQDM_DISABLE is set (read now, not at import)."""
    return rank != 0 or os.environ.get("TQDM_DISABLE", "") not in ("", "0")

