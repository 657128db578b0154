"""Execute notebooks in place with nbclient, for machines that have no nbconvert (e.g. a rented GPU).

    python3 notebooks/run_on_gpu.py notebooks/07_tiny_config.ipynb notebooks/08_small_config.ipynb
    python3 notebooks/run_on_gpu.py --timeout 900 notebooks/08_small_config.ipynb

Each notebook runs top to bottom in a fresh `python3` kernel whose working directory is the
notebook's own folder (as Jupyter and nbval run it), every cell under a time limit; its
outputs replace the stored ones and the file is written back. The kernel inherits this
process's environment, so PYTHONPATH (to import dllm_lite) and DLLM_SMOKE pass through.
A notebook that fails is still written, with the outputs up to the failing cell, and the
script ends with exit status 1 after running the others.

Needs only nbformat, nbclient and ipykernel. Reference: the nbclient documentation
("Executing notebooks", NotebookClient).
"""

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


def run_notebook(path: Path, timeout: int, kernel: str) -> float:
    """Execute the notebook at `path` in place; return its wall time in seconds (raises on a failing cell)."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name=kernel,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(notebook, path)
    return time.perf_counter() - start


def main(argv=None) -> int:
    """Command line: run_on_gpu.py NOTEBOOK [NOTEBOOK ...] [--timeout SECONDS] [--kernel NAME]."""
    parser = argparse.ArgumentParser(description="Execute Jupyter notebooks in place with nbclient.")
    parser.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files to run, in order")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed for each cell (default 600)")
    parser.add_argument("--kernel", default="python3", help="the Jupyter kernel to start (default python3)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"error: no notebook at {', '.join(missing)}; pass paths to .ipynb files", file=sys.stderr)
        return 2
    failed = 0
    for path in args.notebooks:
        path = path.resolve()
        start = time.perf_counter()
        try:
            seconds = run_notebook(path, args.timeout, args.kernel)
            print(f"{path.name}: ran in {seconds:.1f} s", flush=True)
        except CellTimeoutError:
            failed += 1
            print(f"{path.name}: a cell ran past --timeout {args.timeout} s after {time.perf_counter() - start:.1f} s; "
                  f"outputs so far written", flush=True)
        except (CellExecutionError, DeadKernelError) as error:
            failed += 1
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # without the terminal colour codes
            last = text.splitlines()[-1] if text else type(error).__name__
            print(f"{path.name}: FAILED after {time.perf_counter() - start:.1f} s: {last}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
