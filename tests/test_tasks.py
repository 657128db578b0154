"""Synthetic tasks: answers that check out, unique sudoku puzzles (against a brute force over all 4x4 grids),
reversal-curse splits that never leak, determinism, the character set, and the command line."""

import functools
import itertools
import json
import os
import subprocess
import sys
import time

import pytest

from dllm_lite import tasks


def all_4x4_grids():
    """Every valid 4x4 sudoku grid (288), by brute force over rows that are permutations of 1..4."""
    rows = list(itertools.permutations((1, 2, 3, 4)))
    grids = []
    for grid in itertools.product(rows, repeat=4):
        columns_ok = all(len({row[c] for row in grid}) == 4 for c in range(4))
        boxes_ok = all(len({grid[r + i][c + j] for i in (0, 1) for j in (0, 1)}) == 4 for r in (0, 2) for c in (0, 2))
        if columns_ok and boxes_ok:
            grids.append("|".join("".join(map(str, row)) for row in grid))
    return grids


GRIDS_4x4 = all_4x4_grids()


def consistent(prompt, grid):
    return all(given in (".", cell) for given, cell in zip(prompt.removesuffix("="), grid))


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_there_are_288_grids_of_4x4():
    assert len(GRIDS_4x4) == 288 == len(set(GRIDS_4x4))


def test_addition_answers_recompute_from_the_prompt():
    records = tasks.addition(2000, digits=3, seed=1)
    assert len({r["prompt"] for r in records}) == 2000
    for r in records:
        assert len(r["prompt"]) == 8  # 3 + "+" + 3 + "="
        a, b = r["prompt"].removesuffix("=").split("+")
        assert len(a) == len(b) == 3
        assert r["response"] == str(int(a) + int(b))
        assert r["response"] == "0" or not r["response"].startswith("0")
        assert tasks.check_answer("addition", r["prompt"], r["response"])
    assert not tasks.check_answer("addition", "012+099=", "0111")
    assert tasks.check_answer("addition", "012+099=", "111")


def test_addition_train_and_test_are_disjoint(tmp_path):
    paths = tasks.write_task("addition", tmp_path, n_train=3000, n_test=500, seed=0, digits=2)
    train, test = read(paths["train"]), read(paths["test"])
    assert (len(train), len(test)) == (3000, 500)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}


def test_addition_cannot_ask_for_more_prompts_than_exist(tmp_path):
    with pytest.raises(ValueError, match="100 distinct prompts"):
        tasks.write_task("addition", tmp_path, n_train=10, n_test=1000, digits=1)
    records = tasks.addition(100, digits=1)
    assert len({r["prompt"] for r in records}) == 100


def test_sudoku_4x4_puzzles_have_exactly_one_solution_by_brute_force():
    records = tasks.sudoku(300, size=4, seed=3)
    assert len({r["prompt"] for r in records}) == 300
    for r in records:
        assert r["prompt"].endswith("=") and len(r["prompt"]) == 20
        matches = [grid for grid in GRIDS_4x4 if consistent(r["prompt"], grid)]
        assert matches == [r["response"]]
        assert tasks.solve(r["prompt"]) == [r["response"]]
        assert tasks.check_sudoku(r["prompt"], r["response"])


def test_sudoku_without_blanks_is_minimal_and_blanks_stops_early():
    for r in tasks.sudoku(30, size=4, seed=4):
        prompt = r["prompt"].removesuffix("=")
        for cell, given in enumerate(prompt):
            if given not in ".|":
                fewer = prompt[:cell] + "." + prompt[cell + 1:]
                assert len(tasks.solve(fewer)) == 2  # emptying any given breaks uniqueness
    assert all(r["prompt"].count(".") == 5 for r in tasks.sudoku(50, size=4, seed=4, blanks=5))


def test_check_sudoku_rejects_wrong_grids():
    r = tasks.sudoku(1, size=4, seed=5)[0]
    prompt, solution = r["prompt"], r["response"]
    rows = solution.split("|")
    swapped = "|".join([rows[0][1] + rows[0][0] + rows[0][2:]] + rows[1:])  # columns now repeat a digit
    assert not tasks.check_sudoku(prompt, swapped)
    other = next(grid for grid in GRIDS_4x4 if not consistent(prompt, grid))  # valid, but breaks a given
    assert not tasks.check_sudoku(prompt, other)
    for bad in ["", solution + "=", solution[:-1], solution.replace("|", ""), solution.replace("1", ".")]:
        assert not tasks.check_sudoku(prompt, bad)
    assert tasks.check_answer("sudoku", prompt, solution)
    with pytest.raises(ValueError, match="not a sudoku grid"):
        tasks.solve("12|34")


@pytest.mark.parametrize("size, count", [(6, 5), (9, 3)])
def test_bigger_sudokus_are_unique(size, count):
    for r in tasks.sudoku(count, size=size, seed=6):
        rows = r["response"].split("|")
        assert len(rows) == size and all(sorted(row) == [str(d) for d in range(1, size + 1)] for row in rows)
        assert tasks.solve(r["prompt"]) == [r["response"]]
        assert tasks.check_sudoku(r["prompt"], r["response"])


def test_facts_splits_never_leak_and_counts_follow_both_ways():
    splits = tasks.facts(400, seed=7, both_ways=0.3)
    pairs, both = 200, 60
    train_prompts = {r["prompt"] for r in splits["train"]}
    assert len(splits["train"]) == pairs + both == len(train_prompts)
    assert len(splits["test_forward"]) == len(splits["test_reverse"]) == pairs - both
    assert sum("mentee" in r["prompt"] for r in splits["train"]) == both
    assert {r["prompt"] for r in splits["test_forward"]} <= train_prompts
    assert not {r["prompt"] for r in splits["test_reverse"]} & train_prompts
    for forward, reverse in zip(splits["test_forward"], splits["test_reverse"]):
        assert forward["prompt"] == f"Who is {reverse['response']}'s mentor?"
        assert reverse["prompt"] == f"Who is {forward['response']}'s mentee?"
        assert tasks.check_answer("facts", reverse["prompt"], reverse["response"], expected=reverse["response"])
    with pytest.raises(ValueError, match="expected="):
        tasks.check_answer("facts", "Who is Tavo's mentor?", "Mirel")


def test_facts_as_statements_train_whole_sentences_and_test_the_name_after_them():
    questions = tasks.facts(40, seed=3, both_ways=0.25)
    splits = tasks.facts(40, seed=3, both_ways=0.25, form="statement")
    assert len(splits["train"]) == len(questions["train"]) == 20 + 5
    assert all(r["prompt"] == "" and r["response"].endswith(".") for r in splits["train"])
    sentences = {r["response"] for r in splits["train"]}
    for forward, reverse in zip(splits["test_forward"], splits["test_reverse"]):
        assert forward["prompt"].endswith("'s mentor is ") and reverse["prompt"].endswith("'s mentee is ")
        assert forward["prompt"] + forward["response"] in sentences  # learned as said
        assert reverse["prompt"] + reverse["response"] not in sentences  # never said this way
        assert forward["prompt"] == f"{reverse['response'][:-1]}'s mentor is "
    with pytest.raises(ValueError, match="form='prose' is not one of question, statement"):
        tasks.facts(40, form="prose")


def test_facts_names_are_distinct_words_none_a_prefix_of_another():
    splits = tasks.facts(2000, seed=8, both_ways=0.0)
    names = [r["prompt"][len("Who is "):-len("'s mentor?")] for r in splits["test_forward"]]
    names += [r["response"] for r in splits["test_forward"]]
    assert len(names) == len(set(names)) == 2000
    assert all(name.isalpha() and name[0].isupper() and name[1:].islower() for name in names)
    ordered = sorted(names)  # a prefix sorts right before the names that extend it
    assert not any(b.startswith(a) for a, b in zip(ordered, ordered[1:]))
    assert not any("mentee" in r["prompt"] for r in splits["train"])


@pytest.mark.parametrize("name, options", [("addition", {}), ("sudoku", {"size": 4}), ("facts", {})])
def test_same_seed_same_files_other_seed_other_files(tmp_path, name, options):
    def files(seed, folder):
        paths = tasks.write_task(name, tmp_path / folder, n_train=200, n_test=20, seed=seed, **options)
        return {split: path.read_bytes() for split, path in paths.items()}

    first = files(0, "a")
    assert first == files(0, "b")
    assert first != files(1, "c")


def test_all_text_stays_in_the_alphabet():
    records = tasks.addition(200) + tasks.sudoku(20, size=6) + tasks.sudoku(2, size=9)
    records += [r for split in tasks.facts(200).values() for r in split]
    alphabet = set(tasks.ALPHABET)
    assert len(alphabet) == 10 + 26 + 26 + 7  # digits, letters, space and + = . ' ? |
    for r in records:
        assert set(r["prompt"]) <= alphabet and set(r["response"]) <= alphabet


def test_bad_arguments_give_errors_that_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'sudoku'"):
        tasks.write_task("sudoko", tmp_path, 10, 10)
    with pytest.raises(ValueError, match="use 4, 6 or 9"):
        tasks.sudoku(1, size=5)
    with pytest.raises(ValueError, match="no option 'size'"):
        tasks.write_task("addition", tmp_path, 10, 10, size=4)
    with pytest.raises(ValueError, match="leaving none to test"):
        tasks.facts(4, both_ways=0.9)
    with pytest.raises(ValueError, match="found only"):
        tasks.sudoku(5000, size=4, blanks=1)  # only 288 * 16 such puzzles exist


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dllm_lite.tasks", *args], capture_output=True, text=True)


def test_the_command_line_writes_files_and_says_so(tmp_path):
    done = run_cli("facts", "--out", str(tmp_path / "facts"), "--train", "100", "--both-ways", "0.2", "--seed", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("wrote ") for line in lines)
    assert "train.jsonl (60 records)" in lines[0]
    assert len(read(tmp_path / "facts" / "test_reverse.jsonl")) == 40


@pytest.mark.parametrize("args, words", [
    (["additon", "--train", "10"], "did you mean 'addition'"),
    (["sudoku", "--train", "10", "--size", "5"], "use 4, 6 or 9"),
    (["addition", "--train", "0"], "at least 1"),
    (["addition", "--train", "10", "--test", "1000", "--digits", "1"], "100 distinct prompts"),
    (["addition", "--train", "10", "--blanks", "3"], "no option 'blanks'"),
])
def test_command_line_errors_are_one_line(tmp_path, args, words):
    done = run_cli(*args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and words in done.stderr
    assert not (tmp_path / "out").exists()


def test_too_many_people_fail_at_once_with_the_limit():
    """100,000,000 people: the generator's 20 * count draws would run for hours before giving up."""
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "dllm_lite.tasks", "facts", "--out", "unused", "--train",
                           "100000000"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "1,372,000" in done.stderr and "fewer people" in done.stderr
    assert time.time() - started < 30  # (the interpreter's start, contended; nothing is generated)


def test_the_limit_on_people_is_the_largest_prefix_free_set_of_names(monkeypatch):
    """MOST_PEOPLE's formula against a brute-force count on smaller alphabets: every name the generator can make,
    and the largest set of them in which none is a prefix of another (a trie: a node keeps itself or its children)."""
    for consonants, vowels, endings in [("bdl", "ae", ("", "l")), ("bklnr", "aei", ("", "l", "n", "r"))]:
        monkeypatch.setattr(tasks, "CONSONANTS", consonants)
        monkeypatch.setattr(tasks, "VOWELS", vowels)
        monkeypatch.setattr(tasks, "ENDINGS", endings)
        syllables = [c + v for c in consonants for v in vowels]
        names = {"".join(s) + e for n in (2, 3) for s in itertools.product(syllables, repeat=n) for e in endings}

        prefixes = {name[:k] for name in names for k in range(len(name) + 1)}

        @functools.cache
        def most(prefix):
            below = sum(most(prefix + letter) for letter in set(consonants + vowels) if prefix + letter in prefixes)
            return max(1 if prefix in names else 0, below)

        assert tasks._most_names() == most("")
    assert tasks.MOST_PEOPLE == 1_372_000


@pytest.mark.parametrize("out, words", [
    ("a_file", ["is a file"]),
    ("a_file/data", ["inside", "which is a file"]),
    ("", ["empty"]),
    ("/sys/dllm_lite_tasks", ["cannot be written in"]),
])
def test_an_unusable_out_is_one_line(tmp_path, out, words):
    (tmp_path / "a_file").write_text("x")
    out = str(tmp_path / out) if out.startswith("a_file") else out
    done = run_cli("addition", "--train", "10", "--test", "2", "--out", out)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert all(word in done.stderr for word in words), done.stderr
    assert (tmp_path / "a_file").read_text() == "x" and sorted(os.listdir(tmp_path)) == ["a_file"]


def test_an_existing_data_set_is_refused_without_overwrite(tmp_path):
    out = tmp_path / "addition"
    assert run_cli("addition", "--train", "10", "--test", "2", "--out", str(out)).returncode == 0
    before = (out / "train.jsonl").read_bytes()
    done = run_cli("addition", "--train", "20", "--test", "2", "--out", str(out), "--seed", "1")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "--overwrite" in done.stderr
    assert (out / "train.jsonl").read_bytes() == before
    assert run_cli("addition", "--train", "20", "--test", "2", "--out", str(out), "--seed", "1",
                   "--overwrite").returncode == 0
    assert len(read(out / "train.jsonl")) == 20
