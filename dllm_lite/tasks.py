r"""Synthetic prompt/response tasks: small, seeded, and with answers a program can check exactly.

Each task makes records ``{"prompt": ..., "response": ...}``; the model reads the prompt's
characters and must write the response's (the library appends the end-of-text token later).
All text keeps to the 69 characters of `ALPHABET` (digits, ASCII letters, space and
``+ = . ' ? |``): a character vocabulary stays small, and a ~1M-parameter model learns a task on
a CPU in minutes.

- **addition**: ``"0123+4567="`` -> ``"4690"``. The operands are zero-padded to `digits`, so
  every prompt has the same length, 2 * digits + 2; the sum is written without padding,
  most significant digit first (d or d + 1 digits). Prompts are distinct.
- **sudoku**: ``"3..4|.4..|....|..31="`` -> ``"3124|2413|1342|4231"``: the grid row by row,
  ``.`` for an empty cell, rows joined by ``|``. Sizes 4 (2x2 boxes), 6 (boxes of 2 rows by
  3 columns) and 9 (3x3). Every puzzle has exactly one solution. A random full grid comes
  from a backtracking search that tries digits in a seeded random order; then its cells are
  emptied one at a time, in a random order, and a removal is kept only if the solution stays
  unique. Removing cell c keeps it unique exactly when no other digit at c completes the grid:
  a second solution without c must differ from the first at c, or it would solve the puzzle
  with c too. Every cell is tried once; a removal that failed cannot succeed later (fewer
  givens never make a solution unique), so with ``blanks=None`` the puzzle is minimal.
- **facts** (the reversal curse, Berglund et al. 2023): invented people in disjoint pairs,
  "A's mentor is B". Training asks ``"Who is A's mentor?"`` -> ``"B"`` for every pair and, for
  a share `both_ways` of them, also ``"Who is B's mentee?"`` -> ``"A"``. The pairs told one
  way only are tested forward (the training text itself: memorisation) and in reverse (never
  seen: can the model invert a fact it learned one way?). With ``form="statement"`` the facts
  are sentences instead, trained whole (an empty prompt): ``"A's mentor is B."`` and, both
  ways, ``"B's mentee is A."``; the tests give the sentence up to the name, ``"A's mentor is "``
  -> ``"B."`` and ``"B's mentee is "`` -> ``"A."``. A diffusion model trained on whole sentences
  also learns to fill the left name from the right one ("?'s mentor is B."), which question
  and answer training never asks of it (the prompt is never masked).

Generation time, measured on one core of a 2-core AMD EPYC virtual machine (Python 3.11), seeds
0-2: sudoku 10,000 4x4 in 3.0-3.1 s, 1,000 6x6 in 1.5-1.6 s, 100 9x9 in 3.3-4.4 s; 20,000
additions in 0.04 s; 10,000 people in 0.08 s.

Command line: ``python -m dllm_lite.tasks addition --out data/addition --train 20000 --test 500``.
It refuses a folder that already holds the task's files unless given ``--overwrite``, and checks
``--out`` (and, for facts, the number of people the names allow, `MOST_PEOPLE`) before it works.

References: Berglund et al. 2023, "The Reversal Curse: LLMs trained on 'A is B' fail to learn
'B is A'"; Nie et al. 2025 (LLaDA) on the reversal curse in masked diffusion models; Ye et al.
2025, "Beyond Autoregression: Discrete Diffusion for Complex Reasoning and Planning" (sudoku).
"""
from __future__ import annotations

import argparse
import difflib
import functools
import json
import random
import re
import string
import sys
import tempfile
from pathlib import Path

__all__ = ["TASKS", "TASK_DATASETS", "ALPHABET", "MOST_PEOPLE", "addition", "sudoku", "solve", "check_sudoku", "facts", "check_answer",
           "write_task", "main"]

TASKS = ("addition", "sudoku", "facts")
ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + " +=.'?|"
BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # size -> (rows, columns) of a box
FORWARD, REVERSE = "Who is {}'s mentor?", "Who is {}'s mentee?"
STATED_FORWARD, STATED_REVERSE = "{}'s mentor is ", "{}'s mentee is "  # form="statement": the sentence up to the name
FORMS = ("question", "statement")
CONSONANTS, VOWELS, ENDINGS = "bdfgklmnprstvz", "aeiou", ("", "l", "n", "r", "s")  # the invented names' letters

# task name -> (training records, test records) written for data.dataset=<task> (sources.task_files): the sizes
# the training guide uses (facts: people, whose pairs make the training records; its tests are the questions)
TASK_DATASETS = {"addition": (20_000, 500), "sudoku": (20_000, 500), "facts": (2_000, 0)}


def _most_names() -> int:
    """How many names `_names` can ever make: the largest set of its names in which none is a prefix of another.

    A name is 2 or 3 syllables (a consonant and a vowel each) and an ending from ENDINGS. Under each
    2-syllable start B (14 * 5 squared of them), every next consonant c leads to 20 names at most: if c
    is an ending too (l, n, r, s), "Bc" is a name and a prefix of the 3-syllable "BcV..." names, and
    the best is those 5 vowels x 4 non-empty endings; otherwise the 5 vowels x 4 endings again (a bare
    3-syllable "BcV" is a prefix of its 4 ended forms). Taking B alone instead gives 1, so the most is
    (14 * 5)**2 * 14 * 20 = 1,372,000.
    """
    syllables = len(CONSONANTS) * len(VOWELS)
    ended = len(ENDINGS) - 1
    return syllables ** 2 * len(CONSONANTS) * max(1, len(VOWELS) * ended)


MOST_PEOPLE = _most_names()


def _check_people(n_people) -> None:
    """At least 1, and no more than the name generator can make (checked at once, not after minutes of trying)."""
    _check_count(n_people, "n_people")
    if n_people > MOST_PEOPLE:
        raise ValueError(f"n_people={n_people:,} is more than the {MOST_PEOPLE:,} distinct names (none a prefix of "
                         f"another) the name generator can make; ask for fewer people")
_OPTIONS = {"addition": ("digits",), "sudoku": ("size", "blanks"), "facts": ("both_ways", "form")}


def _check_count(n, what: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{what}={n!r} must be a whole number of at least 1")


def _check_task(name: str) -> None:
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), TASKS, n=1)
        raise ValueError(f"unknown task {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                         f"use one of {', '.join(TASKS)}")


def _check_digits(digits) -> None:
    if not isinstance(digits, int) or not 1 <= digits <= 9:
        raise ValueError(f"digits={digits!r} must be between 1 and 9")


def addition(n: int, digits: int = 4, seed: int = 0) -> list[dict]:
    """n distinct additions of two numbers drawn uniformly from [0, 10**digits), digits in 1..9.

    Prompt ``"0123+4567="`` (operands zero-padded to `digits`), response ``"4690"`` (no padding).
    """
    _check_count(n)
    _check_digits(digits)
    base = 10 ** digits
    if n > base * base:
        raise ValueError(f"addition with digits={digits} has {base * base} distinct prompts, fewer than the "
                         f"{n} asked; ask for fewer or raise digits")
    rng = random.Random(seed)
    pairs = (divmod(index, base) for index in rng.sample(range(base * base), n))  # distinct (a, b)
    return [{"prompt": f"{a:0{digits}d}+{b:0{digits}d}=", "response": str(a + b)} for a, b in pairs]


@functools.cache
def _units(size: int) -> list[tuple[int, int, int]]:
    """For each cell of a size x size grid, the indices of its row, column and box among the 3 * size units."""
    box_rows, box_cols = BOXES[size]
    return [(r, size + c, 2 * size + (r // box_rows) * (size // box_cols) + c // box_cols)
            for r in range(size) for c in range(size)]


def _used(grid: list[int], size: int) -> list[int] | None:
    """Bit d-1 of used[unit] is set when digit d is in that unit (row, column, box); None if the grid clashes."""
    used = [0] * (3 * size)
    for (a, b, c), digit in zip(_units(size), grid):
        if digit:
            bit = 1 << (digit - 1)
            if (used[a] | used[b] | used[c]) & bit:
                return None
            used[a], used[b], used[c] = used[a] | bit, used[b] | bit, used[c] | bit
    return used


def _solutions(grid: list[int], size: int, limit: int, rng: random.Random | None = None) -> list[list[int]]:
    """Up to `limit` completions of grid (0 = empty); with rng, digits are tried in a random order."""
    used, found = _used(grid, size), []
    if used is not None:
        _search(list(grid), used, _units(size), size, limit, found, rng)
    return found


def _search(grid, used, units, size, limit, found, rng) -> None:
    """Depth-first search that fills the empty cell with the fewest candidate digits first."""
    best, best_count, best_options, everything = -1, size + 1, 0, (1 << size) - 1
    for cell, digit in enumerate(grid):
        if digit == 0:
            a, b, c = units[cell]
            options = everything & ~(used[a] | used[b] | used[c])
            count = options.bit_count()
            if count < best_count:
                best, best_count, best_options = cell, count, options
                if count <= 1:
                    break
    if best < 0:
        found.append(list(grid))
        return
    digits = [d for d in range(1, size + 1) if best_options >> (d - 1) & 1]
    if rng is not None and best_count > 1:
        rng.shuffle(digits)
    a, b, c = units[best]
    for digit in digits:
        bit = 1 << (digit - 1)
        grid[best], used[a], used[b], used[c] = digit, used[a] | bit, used[b] | bit, used[c] | bit
        _search(grid, used, units, size, limit, found, rng)
        grid[best], used[a], used[b], used[c] = 0, used[a] ^ bit, used[b] ^ bit, used[c] ^ bit
        if len(found) >= limit:
            return


def _unique_without(puzzle: list[int], solution: list[int], cell: int, size: int) -> bool:
    """Whether the puzzle, whose only solution is `solution`, stays unique with `cell` emptied."""
    trial = list(puzzle)
    trial[cell] = 0
    used = _used(trial, size)
    a, b, c = _units(size)[cell]
    others = ~(used[a] | used[b] | used[c] | 1 << (solution[cell] - 1))  # digits that could go there instead
    for digit in range(1, size + 1):
        if others >> (digit - 1) & 1:
            trial[cell] = digit
            if _solutions(trial, size, limit=1):
                return False
    return True


def _format(grid: list[int], size: int) -> str:
    text = "".join(str(d) if d else "." for d in grid)
    return "|".join(text[r * size:(r + 1) * size] for r in range(size))


def _parse(text: str) -> tuple[list[int], int]:
    """A grid string (with or without the final ``=``) -> (cells, size); ValueError if it is not a grid."""
    rows = text.removesuffix("=").split("|")
    size = len(rows)
    if size not in BOXES or any(len(row) != size or not set(row) <= set("." + string.digits[1:size + 1])
                                for row in rows):
        raise ValueError(f"{text!r} is not a sudoku grid; write 4, 6 or 9 rows of digits 1..size and '.', "
                         f"joined by '|'")
    return [0 if ch == "." else int(ch) for ch in "".join(rows)], size


def solve(grid: str) -> list[str]:
    """The solutions of a puzzle string such as ``"3..4|.4..|....|..31="``, at most two (two means: not unique)."""
    cells, size = _parse(grid)
    return [_format(found, size) for found in _solutions(cells, size, limit=2)]


def check_sudoku(prompt: str, response: str) -> bool:
    """Whether response is a full valid grid that keeps every given of the prompt (a malformed one is False)."""
    givens, size = _parse(prompt)
    try:
        cells, response_size = _parse(response)
    except ValueError:
        return False
    if response_size != size or response.endswith("=") or 0 in cells:
        return False
    if any(given and given != cell for given, cell in zip(givens, cells)):
        return False
    return _solutions(cells, size, limit=1) == [cells]  # a full grid "solves" itself iff no unit repeats a digit


def sudoku(n: int, size: int = 4, seed: int = 0, blanks: int | None = None) -> list[dict]:
    """n distinct sudoku puzzles with exactly one solution each; see the module docstring for how.

    blanks=None empties as many cells as uniqueness allows; a number stops there (a puzzle may
    end with fewer when uniqueness stops it first). Raises ValueError when fewer than n distinct
    puzzles turn up in 4n + 1000 tries (a small space, e.g. size 4 with blanks=1).
    """
    _check_count(n)
    if size not in BOXES:
        raise ValueError(f"size={size!r} is not a sudoku size; use 4, 6 or 9")
    if blanks is not None and (not isinstance(blanks, int) or not 1 <= blanks < size * size):
        raise ValueError(f"blanks={blanks!r} must be between 1 and {size * size - 1} for size {size}, or None")
    rng = random.Random(seed)
    records, seen = [], set()
    for _ in range(4 * n + 1000):
        solution = _solutions([0] * (size * size), size, limit=1, rng=rng)[0]
        puzzle, removed = list(solution), 0
        for cell in rng.sample(range(size * size), size * size):
            if removed == blanks:
                break
            if _unique_without(puzzle, solution, cell, size):
                puzzle[cell], removed = 0, removed + 1
        prompt = _format(puzzle, size) + "="
        if prompt not in seen:
            seen.add(prompt)
            records.append({"prompt": prompt, "response": _format(solution, size)})
            if len(records) == n:
                return records
    raise ValueError(f"found only {len(records)} distinct size-{size} puzzles with blanks={blanks} in "
                     f"{4 * n + 1000} tries, fewer than the {n} asked; ask for fewer or allow more blanks")


def _names(count: int, rng: random.Random) -> list[str]:
    """count distinct invented names of 2-3 syllables, none a prefix of another ("Tavo", "Mirel")."""
    _check_people(count)
    names, taken = {}, set()  # taken: every name and every prefix of one
    for _ in range(20 * count + 1000):
        name = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 3)))
        name = (name + rng.choice(ENDINGS)).capitalize()
        if name in taken or any(name[:k] in names for k in range(1, len(name))):
            continue  # a name taken or a prefix of one, or a name taken is a prefix of it
        names[name] = None  # a dict: ordered, and `in` is quick
        taken.update(name[:k] for k in range(1, len(name) + 1))
        if len(names) == count:
            return list(names)
    raise ValueError(f"could not invent {count:,} distinct names (made {len(names):,}); ask for fewer people")


def facts(n_people: int, seed: int = 0, both_ways: float = 0.5, form: str = "question") -> dict[str, list[dict]]:
    """Invented mentor facts in splits "train", "test_forward" and "test_reverse"; see the module docstring.

    n_people (even) people form n_people / 2 pairs "A's mentor is B"; round(both_ways * pairs)
    of them are also trained in reverse, the others are the tests (at least one must be).
    form: "question" (``"Who is A's mentor?"`` -> ``"B"``) or "statement" (trained as whole
    sentences ``"A's mentor is B."``; tested as ``"A's mentor is "`` -> ``"B."``).
    """
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not one of {', '.join(FORMS)}")
    _check_count(n_people, "n_people")
    if n_people % 2:
        raise ValueError(f"n_people={n_people} must be even: each person is in exactly one pair")
    if not 0 <= both_ways < 1:
        raise ValueError(f"both_ways={both_ways!r} must be in [0, 1): the pairs told one way only are the tests")
    rng = random.Random(seed)
    names = _names(n_people, rng)
    pairs = list(zip(names[0::2], names[1::2]))  # (mentee, mentor)
    n_both = round(both_ways * len(pairs))
    if n_both == len(pairs):
        raise ValueError(f"both_ways={both_ways} tells all {len(pairs)} pairs both ways, leaving none to test; "
                         f"lower both_ways or add people")
    if form == "question":
        forward = [{"prompt": FORWARD.format(a), "response": b} for a, b in pairs]
        reverse = [{"prompt": REVERSE.format(b), "response": a} for a, b in pairs]
        train = forward + reverse[:n_both]
    else:
        forward = [{"prompt": STATED_FORWARD.format(a), "response": f"{b}."} for a, b in pairs]
        reverse = [{"prompt": STATED_REVERSE.format(b), "response": f"{a}."} for a, b in pairs]
        train = [{"prompt": "", "response": r["prompt"] + r["response"]} for r in forward + reverse[:n_both]]
    rng.shuffle(train)
    return {"train": train, "test_forward": forward[n_both:], "test_reverse": reverse[n_both:]}


def check_answer(task: str, prompt: str, response: str, expected: str | None = None) -> bool:
    """The exact check of a response: addition recomputes the sum from the prompt, sudoku runs
    `check_sudoku`; facts cannot be answered from the prompt, so it compares with `expected`
    (the record's response), which only facts uses and requires."""
    _check_task(task)
    if task == "addition":
        match = re.fullmatch(r"(\d+)\+(\d+)=", prompt)
        if match is None:
            raise ValueError(f"{prompt!r} is not an addition prompt like '0123+4567='")
        return response == str(int(match[1]) + int(match[2]))
    if task == "sudoku":
        return check_sudoku(prompt, response)
    if expected is None:
        raise ValueError("facts answers are not in the prompt; pass expected=record['response']")
    return response == expected


def _check_out(out_dir, files: list[str], overwrite: bool) -> Path:
    """The output folder, checked before any record is made: not empty, not a file, writable (a file is
    created and removed in it, or in the nearest folder above it that exists: permission bits say
    nothing for root or /sys), and holding none of `files` unless `overwrite`. ValueError in one line
    otherwise. Nothing is created here."""
    if str(out_dir) == "":
        raise ValueError("the output folder is empty; name one, e.g. --out data/addition")
    out = Path(out_dir)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == out else f"is inside {blocker}, which is a file"
        raise ValueError(f"{out} {where}, not a folder; choose another --out")
    existing = [f for f in files if (out / f).exists()]
    if existing and not overwrite:
        raise ValueError(f"{out} already holds a data set ({existing[0]}); pass --overwrite to replace it, or choose "
                         f"another --out")
    nearest = next(p for p in (out, *out.parents, Path.cwd()) if p.is_dir())
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        raise ValueError(f"{out} cannot be written in ({error.strerror or error}); choose another --out") from None
    return out


def write_task(name: str, out_dir, n_train: int, n_test: int, seed: int = 0, overwrite: bool = True,
               **options) -> dict[str, Path]:
    """Write a task's splits as JSON lines into out_dir (created); returns {split: path}.

    addition and sudoku: ``train.jsonl`` (n_train records) and ``test.jsonl`` (n_test), all
    prompts distinct, so no test prompt is in train. facts: n_train is the number of people and
    n_test is ignored; ``train.jsonl``, ``test_forward.jsonl``, ``test_reverse.jsonl``. Options:
    addition digits; sudoku size, blanks; facts both_ways, form. overwrite=False refuses a folder
    that already holds one of those files (the command line's default); a notebook that runs
    again replaces its own data (the default here).
    """
    _check_task(name)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(f"{name} has no option {unknown[0]!r}; its options: {', '.join(_OPTIONS[name])}")
    files = ["train.jsonl"] + (["test_forward.jsonl", "test_reverse.jsonl"] if name == "facts" else ["test.jsonl"])
    if name == "facts":
        _check_people(n_train)
        out = _check_out(out_dir, files, overwrite)
        splits = facts(n_train, seed=seed, **options)
    else:
        _check_count(n_train, "n_train")
        _check_count(n_test, "n_test")
        if name == "addition":
            digits = options.get("digits", 4)
            _check_digits(digits)
            if n_train + n_test > 100 ** digits:
                raise ValueError(f"addition with digits={digits} has {100 ** digits} distinct prompts, fewer than "
                                 f"n_train + n_test = {n_train + n_test}; ask for fewer or raise digits")
        out = _check_out(out_dir, files, overwrite)
        records = (addition if name == "addition" else sudoku)(n_train + n_test, seed=seed, **options)
        splits = {"train": records[n_test:], "test": records[:n_test]}
    paths, target = {}, out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for split, records in splits.items():
            target = paths[split] = out / f"{split}.jsonl"
            with open(target, "w", encoding="utf-8", newline="\n") as file:
                file.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    except OSError as error:  # the disk filled, or the folder changed since the check
        raise ValueError(f"could not write {target} ({error.strerror or error})") from None
    return paths


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit code 2 (argparse's default adds the usage)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    """Command line: python -m dllm_lite.tasks TASK --out DIR --train N [--test N] [options]; returns 0."""
    parser = _Parser(prog="python -m dllm_lite.tasks", description="Write a synthetic prompt/response task "
                     "as JSON lines.")
    parser.add_argument("task", help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--out", required=True, help="folder for the .jsonl files, e.g. data/addition")
    parser.add_argument("--train", type=int, required=True, help="training records (facts: people)")
    parser.add_argument("--test", type=int, default=500, help="test records (ignored by facts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", type=int, help="addition: digits per operand (default 4)")
    parser.add_argument("--size", type=int, help="sudoku: 4, 6 or 9 (default 4)")
    parser.add_argument("--blanks", type=int, help="sudoku: at most this many empty cells (default: as many as "
                        "uniqueness allows)")
    parser.add_argument("--both-ways", type=float, help="facts: share of pairs also trained in reverse (default 0.5)")
    parser.add_argument("--form", choices=FORMS, help="facts: questions and answers (default) or whole sentences")
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    args = parser.parse_args(argv)
    options = {key: getattr(args, key) for key in ("digits", "size", "blanks", "both_ways", "form")
               if getattr(args, key) is not None}
    try:
        paths = write_task(args.task, args.out, args.train, args.test, seed=args.seed, overwrite=args.overwrite,
                           **options)
    except ValueError as error:
        parser.error(str(error))
    for path in paths.values():
        with open(path, encoding="utf-8") as file:
            print(f"wrote {path} ({sum(1 for _ in file)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
