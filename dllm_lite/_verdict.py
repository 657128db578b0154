"""How an exercise checker reports: a verdict that says what was wrong, where, and what to try.

A checker is a function `body(fn) -> summary` that calls the student's `fn` on seeded
inputs and raises `Wrong` at the first problem. `checker(body)` turns it into the
public `check_*` function: it runs the body on one thread (the tensors are small) with the
random state seeded, restores both afterwards, prints one of

    ✓ check_x: <summary>
    ✗ check_x: <problem>  (then input / expected / got / hint lines)
    … check_x: not implemented yet ...

and returns True or False. It never raises, so a notebook that still holds its
`raise NotImplementedError` stub runs from top to bottom. `dllm_lite.exercises` holds
the checkers themselves.
"""

import functools

import torch

__all__ = ["Wrong", "checker", "call", "expect_tensor", "near", "rounded"]


class Wrong(Exception):
    """One failed check: the problem, the input it showed up on, expected vs got, a hint."""

    def __init__(self, problem, on="", expected="", got="", hint=""):
        super().__init__(problem)
        fields = (("input:", on), ("expected:", expected), ("got:", got), ("hint:", hint))
        self.lines = [problem] + [f"  {label:<9} {text}" for label, text in fields if str(text)]


def checker(body):
    """Turn `body(fn) -> summary` into `check(fn) -> bool` that prints a verdict and never raises."""

    @functools.wraps(body)
    def check(fn) -> bool:
        name = body.__name__
        if not callable(fn):
            print(f"✗ {name}: pass your function itself, e.g. {name}(my_function); got a {type(fn).__name__}")
            return False
        threads = torch.get_num_threads()
        try:
            # the caller's random state is left as it was; one thread suits these small tensors and
            # avoids thread-pool contention on a busy machine
            torch.set_num_threads(1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                summary = body(fn)
        except NotImplementedError:
            print(f"… {name}: not implemented yet. Replace `raise NotImplementedError` with your code and run again.")
            return False
        except Wrong as wrong:
            print(f"✗ {name}: " + "\n".join(wrong.lines))
            return False
        finally:
            torch.set_num_threads(threads)
        print(f"✓ {name}: {summary}")
        return True

    return check


def call(fn, on, *args):
    """fn(*args), with an error in the student's code turned into a `Wrong` that names the input `on`."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        raise Wrong(f"your function raised {type(error).__name__}: {error}", on,
                    hint="call it on this input yourself to see the full traceback") from None


def expect_tensor(value, shape, on, what, dtype=None):
    """Raise `Wrong` unless `value` is a tensor of this shape (and dtype, when given)."""
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"{what} should be a torch.Tensor", on, f"a tensor of shape {tuple(shape)}", type(value).__name__)
    if tuple(value.shape) != tuple(shape):
        raise Wrong(f"{what} has the wrong shape", on, tuple(shape), tuple(value.shape))
    if dtype is not None and value.dtype != dtype:
        raise Wrong(f"{what} has the wrong dtype", on, dtype, value.dtype)


def near(a: float, b: float, tol: float) -> bool:
    """|a - b| <= tol."""
    return abs(a - b) <= tol


def rounded(values: torch.Tensor) -> list:
    """A tensor as a list of numbers rounded to 3 decimals, for messages."""
    return [round(v, 3) for v in values.tolist()]
