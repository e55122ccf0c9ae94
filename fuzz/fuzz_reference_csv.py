"""Coverage-guided fuzzing of the reference data's CSV reader (atheris): the files officials
edit (places, departments, categories, posts, officers).

Run standalone: ``.venv/bin/python fuzz/fuzz_reference_csv.py -atheris_runs=100000``. The first
lines of one shipped file, with a fuzzer-chosen slice replaced by fuzzed bytes (or fuzzed bytes
alone), are read by the loader's per-file step (``_Loader.csv`` and its uniqueness check: the whole
``load_reference`` reads every file, ~0.1 s, too slow to fuzz). Invariants: a bad file
becomes problems naming the file, never an exception; every record read is of the file's model.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["core.reference"]):
    from core.reference import loader
    from core.reference.models import (
        Category,
        Department,
        District,
        Division,
        Officer,
        PostTemplate,
        Tehsil,
        Thana,
    )

MODELS = {
    "divisions.csv": Division,
    "districts.csv": District,
    "tehsils.csv": Tehsil,
    "thanas.csv": Thana,
    "departments.csv": Department,
    "categories.csv": Category,
    "posts.csv": PostTemplate,
    "officers.csv": Officer,
}
FILES = sorted(MODELS)
#: The first lines of each shipped file (header, comments, a few rows): every row costs a
#: pydantic validation, and the structure is all near the top.
SHIPPED = {
    name: b"".join((loader.DEFAULT_DATA_DIR / name).read_bytes().splitlines(keepends=True)[:12])
    for name in FILES
}
ROOT = Path(tempfile.mkdtemp(prefix="fuzz-reference-"))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = FILES[fdp.ConsumeIntInRange(0, len(FILES) - 1)]
    shipped = SHIPPED[name]
    if fdp.ConsumeIntInRange(0, 7) == 0:
        content = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512))
    else:
        start = fdp.ConsumeIntInRange(0, len(shipped))
        end = min(len(shipped), start + fdp.ConsumeIntInRange(0, 40))
        content = shipped[:start] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32)) + shipped[end:]
    (ROOT / name).write_bytes(content)
    load = loader._Loader(ROOT)
    rows = load.csv(name, MODELS[name])
    load.unique(rows, "code" if "code" in MODELS[name].model_fields else "department")
    assert all(isinstance(row.record, MODELS[name]) for row in rows)
    assert all(problem.startswith(name) for problem in load.problems), load.problems


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
