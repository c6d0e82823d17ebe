"""Fuzzing the loaders of what people write by hand: board profiles
(`boards.parse`), site files (`sites.load_site`) and inventories
(`sites.load_inventory`, then `sites.build_config` for each row). Random
bytes and mutated good documents must each load, or be refused with the
documented error (BoardError, SiteError) naming the file: no other
exception, no hang."""

import csv
import io
import json
import math
import os
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools.field import boards, sites
from tests.conftest import RECORDINGS, ROOT
from tests.fuzz_settings import fuzz, mutate, rngs, scalar, scratch_dir

BOARD_DOCS = [tomllib.loads(p.read_text()) for p in sorted((ROOT / "boards").glob("*.toml"))]
SITE_DOC = tomllib.loads((ROOT / "sites" / "example" / "site.toml").read_text())
INVENTORY = (ROOT / "sites" / "example" / "inventory.csv").read_text()
ROWS = [r for r in csv.reader(io.StringIO(INVENTORY)) if r and not r[0].startswith("#")] + [
    ["park-2", "esp32-devkitc", "/dev/ttyUSB0", "bay-05:ultrasonic bay-06:magnetic", "", "52.37,4.89"],
    ["street-2", "esp32-poe", "/dev/ttyUSB1", "", "4200", ""]]


def toml_value(v):
    """`v` as a TOML value; a JSON null, which TOML lacks, as an empty array."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # its escapes are TOML's; a lone surrogate is not valid TOML
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (json.dumps(str(k)), toml_value(x)) for k, x in v.items()) + "}"
    return "[]"


def toml(doc):
    if not isinstance(doc, dict):
        doc = {"x": doc}
    return "".join("%s = %s\n" % (json.dumps(str(k)), toml_value(v)) for k, v in doc.items())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """sites/fuzz/ beside a link to the bundled recordings, so the example
    site's relative recording paths resolve as in the repository."""
    with scratch_dir(tmp_path_factory, "loaders") as d:
        (d / "sites" / "fuzz").mkdir(parents=True)
        os.symlink(RECORDINGS, d / "recordings")
        yield d / "sites" / "fuzz"


def board(path):
    try:
        boards.describe(boards.parse(path))
    except boards.BoardError as e:
        assert str(e).startswith(str(path) + ": ") and "\n" not in str(e), e


def site(path):
    try:
        sites.load_site(path)
    except sites.SiteError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e), e


# Each TOML loader: how to load a file (it loads, or is refused naming the
# file) and a mutated good document for it.
TOML_LOADERS = {
    "board": (board, lambda rng: toml(mutate(rng, rng.choice(BOARD_DOCS)))),
    "site": (site, lambda rng: toml(mutate(rng, SITE_DOC, depth=3))),
}


@fuzz
@pytest.mark.parametrize("kind", sorted(TOML_LOADERS))
@given(data=st.binary(max_size=300))
def test_fuzz_toml_random_bytes(folder, kind, data):
    path = folder / (kind + ".toml")
    path.write_bytes(data)
    TOML_LOADERS[kind][0](path)


@fuzz
@pytest.mark.parametrize("kind", sorted(TOML_LOADERS))
@given(rng=rngs)
def test_fuzz_toml_mutated(folder, kind, rng):
    load, document = TOML_LOADERS[kind]
    path = folder / (kind + ".toml")
    path.write_text(document(rng))
    load(path)


def cell(rng):
    v = scalar(rng)
    return v if isinstance(v, str) else json.dumps(v)


def inventory(rng):
    """The example inventory's rows (and two field boards), some cells
    changed, rows dropped, one doubled or made longer; now and then raw
    text."""
    out = io.StringIO()
    w = csv.writer(out)
    header = list(sites.COLUMNS)
    if rng.random() < 0.1:
        header[rng.randrange(len(header))] = cell(rng)
    w.writerow(header)
    for row in ROWS + ([rng.choice(ROWS)] if rng.random() < 0.2 else []):
        r = rng.random()
        if r < 0.1:
            continue
        row = list(row)
        for _ in range(rng.randint(0, 2)):
            row[rng.randrange(len(row))] = cell(rng)
        if r > 0.95:
            row.append(cell(rng))
        w.writerow(row)
    text = out.getvalue()
    if rng.random() < 0.05:
        i = rng.randrange(len(text) + 1)
        text = text[:i] + cell(rng) + text[i:]
    return text


@pytest.fixture(scope="module")
def example_site(folder):
    path = folder / "example.toml"
    path.write_text((ROOT / "sites" / "example" / "site.toml").read_text())
    return sites.load_site(path)


def rows(path, s):
    try:
        for row in sites.load_inventory(path, s):
            sites.build_config(s, row)
    except sites.SiteError as e:
        # A row's error names the inventory; a secret the row's board needs
        # and the environment lacks names the site file.
        for line in e.lines:
            assert line.startswith((str(path), str(s.path))) and "\n" not in line, line


@fuzz
@given(st.binary(max_size=300))
def test_fuzz_inventory_random_bytes(folder, example_site, data):
    path = folder / "inventory.csv"
    path.write_bytes(data)
    rows(path, example_site)


@fuzz
@given(rngs)
def test_fuzz_inventory_mutated(folder, example_site, rng):
    path = folder / "inventory.csv"
    path.write_bytes(inventory(rng).encode("utf-8", "surrogatepass"))  # a lone surrogate: not UTF-8
    rows(path, example_site)
