"""Fuzzing the recording readers: the firmware's `citynode.board.recording.Reader`
(with the replay behind it) and the host's `citynode replay` path, which
reads `.gz` files through its own decompression. Random bytes, random JSON
values and mutated good recordings must each be read, or refused with one
RecordingError / ReplayError line naming the file and the line: no other
exception, no hang."""

import gzip
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citynode.board import replay as core_replay
from citynode.board.recording import Reader, RecordingError
from host_tools.desk import replay
from tests.fuzz_settings import EXAMPLES, fuzz, mutate, rngs, scratch_dir, value
from tests.test_recording import GOOD, HEADER

NAME = "fuzz.jsonl"
def recording(rng):
    """The bytes of a recording: a header and records in time order, each
    good, mutated or any JSON value; now and then raw bytes, a line end
    missing, or CR LF or CR line ends."""
    r = rng.random()
    header = HEADER if r < 0.6 else mutate(rng, HEADER) if r < 0.95 else value(rng)
    lines = [header]
    for good in GOOD * rng.randint(0, 2):
        r = rng.random()
        if r < 0.3:
            continue
        lines.append(good if r < 0.75 else mutate(rng, good) if r < 0.97 else value(rng))
    r = rng.random()
    end = b"\n" if r < 0.9 else b"\r\n" if r < 0.95 else b"\r"
    parts = []
    for line in lines:
        r = rng.random()
        parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 30))) if r < 0.02
                     else json.dumps(line).encode())
        parts.append(b"" if r > 0.98 else end)
    return b"".join(parts)


def one_line(msg, name=NAME):
    assert msg.startswith(name + ":") and "\n" not in msg, msg
    assert int(msg[len(name) + 1:].split(":")[0]) >= 1, msg
    return msg


def read(data, chunk):
    """Read `data` through the firmware's Reader: the records, or the
    error's one line."""
    try:
        with Reader(NAME, chunk=chunk, stream=io.BytesIO(data)) as reader:
            return [rec for rec in reader]
    except RecordingError as e:
        return one_line(str(e))


@fuzz
@given(st.binary(max_size=600), st.integers(1, 700))
def test_fuzz_reader_random_bytes(data, chunk):
    read(data, chunk)


@fuzz
@given(rngs, st.integers(1, 700))
def test_fuzz_reader_json_values(rng, chunk):
    data = recording(rng)
    # The chunk size never changes what is read, nor where it stops.
    assert read(data, chunk) == read(data, 512)


@settings(fuzz, max_examples=max(EXAMPLES // 4, 100))
@given(rngs)
def test_fuzz_replay_behind_the_reader(rng):
    """What the reader accepts, the firmware's replay takes: it publishes,
    or refuses the header's sensor parameters with a RecordingError."""
    try:
        core_replay.replay(NAME, lambda t, topic, payload: None, stream=io.BytesIO(recording(rng)))
    except RecordingError as e:
        one_line(str(e))


@pytest.fixture(scope="module")
def gz_path(tmp_path_factory):
    with scratch_dir(tmp_path_factory, "recording") as d:
        yield d / (NAME + ".gz")


@fuzz
@given(rngs, st.sampled_from(["whole", "cut", "flip"]))
def test_fuzz_host_reader_gzip(gz_path, rng, how):
    """The host's reading of a `.gz` recording, whole, cut short or with a
    byte changed: the header and truth, or one RecordingError line."""
    z = bytearray(gzip.compress(recording(rng), mtime=0))
    if how == "cut":
        del z[rng.randrange(len(z)):]
    elif how == "flip":
        z[rng.randrange(len(z))] ^= rng.randint(1, 255)
    gz_path.write_bytes(bytes(z))
    try:
        replay.read_truth(gz_path)
    except RecordingError as e:
        one_line(str(e), str(gz_path))
