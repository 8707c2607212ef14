"""The HDF5 store: round trip, byte determinism, and a reader that trusts nothing."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from wavesurrogate.data.schema import SCHEMA, case_checksum, decode_chunk, encode_chunk
from wavesurrogate.data.store import DataWriter, describe, open_data
from wavesurrogate.errors import DataFileError

N, NT, NY, NX = 3, 4, 5, 6


def _attrs() -> dict:
    return {"solver": "fd", "space_order": 4, "dt": 1e-4, "dx": 10.0, "dy": 12.0, "frame_stride": 3,
            "boundary": "absorbing", "seed": 7, "package_version": "0.1.0", "config_yaml": "name: t\n"}


def _case(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    return rng.standard_normal((NT, NY, NX)).astype(np.float32), (1500 + 100 * rng.random((NY, NX))).astype(
        np.float32)


def _write(path: Path, order=range(N)) -> Path:
    x, y, t = np.arange(NX) * 10.0, np.arange(NY) * 12.0, np.arange(NT) * 3e-4
    with DataWriter(path, n_cases=N, n_frames=NT, x=x, y=y, t=t, attrs=_attrs(),
                    param_names=["freq_hz", "source_x_m"]) as w:
        for i in order:
            f, v = _case(i)
            w.write_case(i, f, v, {"freq_hz": 10.0 + i, "source_x_m": 5.0 * i}, split=int(i == N - 1))
    return path


def test_round_trip(tmp_path: Path) -> None:
    p = _write(tmp_path / "d.h5")
    with open_data(p) as d:
        assert (d.n_cases, d.n_frames, d.ny, d.nx) == (N, NT, NY, NX)
        assert d.attrs["schema"] == SCHEMA and d.attrs["seed"] == 7
        assert d.dt == 1e-4 and d.frame_stride == 3 and d.dx == 10.0 and d.dy == 12.0
        assert d.frame_dt == pytest.approx(3e-4)
        np.testing.assert_allclose(d.t, np.arange(NT) * 3e-4)
        np.testing.assert_array_equal(d.x, np.arange(NX) * 10.0)
        np.testing.assert_array_equal(d.split, [0, 0, 1])
        np.testing.assert_array_equal(d.cases("test"), [2])
        assert d.done.all()
        np.testing.assert_array_equal(d.params["freq_hz"], [10.0, 11.0, 12.0])
        for i in range(N):
            f, v = _case(i)
            np.testing.assert_array_equal(d.fields(i), f)
            np.testing.assert_array_equal(d.velocity(i), v)
        fa, va = d.load_all([2, 0])
        np.testing.assert_array_equal(fa[0], _case(2)[0])
        np.testing.assert_array_equal(va[1], _case(0)[1])
        with h5py.File(p, "r") as h:
            assert h["fields"].chunks == (1, NT, NY, NX) and h["fields"].compression == "gzip"
            f0, v0 = _case(0)
            expect = hashlib.sha256(f0.astype("<f4").tobytes() + v0.astype("<f4").tobytes()).hexdigest()
            assert h["checksum"][0].decode() == expect == case_checksum(f0, v0)


def test_same_content_same_bytes_and_no_timestamps(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.h5").read_bytes()
    time.sleep(1.1)  # HDF5 timestamps have a resolution of one second
    b = _write(tmp_path / "b.h5").read_bytes()
    assert a == b


def test_incomplete_writer_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="never written"):
        _write(tmp_path / "d.h5", order=[0, 1])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ZeroDivisionError), DataWriter(
            tmp_path / "e.h5", n_cases=1, n_frames=1, x=[0.0], y=[0.0], t=[0.0], attrs=_attrs(),
            param_names=[]):
        1 / 0  # noqa: B018
    assert list(tmp_path.iterdir()) == []


def _corrupt(src: Path, dst: Path, fn) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as h:
        fn(h)
    return dst


def _one_line_error(p: Path, match: str, case: int | None = None) -> None:
    with pytest.raises(DataFileError, match=match) as ei:
        with open_data(p) as d:
            if case is not None:
                d.fields(case)
    assert "\n" not in str(ei.value)


def test_checksum_mismatch_detected(tmp_path: Path) -> None:
    good = _write(tmp_path / "d.h5")

    def flip(h):
        a = h["fields"][1]
        a[2, 3, 4] += 1e-3
        h["fields"][1] = a

    bad = _corrupt(good, tmp_path / "bad.h5", flip)
    with open_data(bad) as d:
        d.fields(0)  # other cases still fine
        with pytest.raises(DataFileError, match="case 1: checksum mismatch"):
            d.fields(1)
        with pytest.raises(DataFileError, match="checksum mismatch"):
            d.velocity(1)


def test_nan_fields_rejected_even_with_matching_checksum(tmp_path: Path) -> None:
    good = _write(tmp_path / "d.h5")

    def nan(h):
        a = h["fields"][0]
        a[0, 0, 0] = np.nan
        h["fields"][0] = a
        h["checksum"][0] = case_checksum(a, h["velocity"][0]).encode()

    _one_line_error(_corrupt(good, tmp_path / "nan.h5", nan), "non-finite", case=0)


@pytest.mark.parametrize("damage,match", [
    (lambda h: h.attrs.__setitem__("schema", "wavesurrogate/0"), "schema 'wavesurrogate/0' is not supported"),
    (lambda h: h.attrs.__delitem__("schema"), "no 'schema' attribute"),
    (lambda h: h.attrs.__delitem__("dt"), "missing attribute 'dt'"),
    (lambda h: h.attrs.__setitem__("dx", -1.0), "'dx' must be a positive"),
    (lambda h: h.__delitem__("velocity"), "missing dataset 'velocity'"),
    (lambda h: h.__delitem__("checksum"), "missing dataset 'checksum'"),
    (lambda h: (h.__delitem__("t"), h.create_dataset("t", data=np.zeros(NT + 1))), "'t' has shape"),
    (lambda h: h["params"].create_dataset("extra", data=np.zeros(N + 2)), "'params/extra' has shape"),
    (lambda h: h["done"].__setitem__(1, False), "case 1 was never written"),
    (lambda h: h.attrs.__setitem__("n_spatial_dims", 4), "'n_spatial_dims' must be 1, 2 or 3"),
    (lambda h: h.attrs.__setitem__("n_spatial_dims", 3), "missing attribute 'dz'"),
    (lambda h: h.attrs.__setitem__("axes", np.array([b"case", b"frame", b"x", b"y"])), "'axes' must be"),
    (lambda h: h.attrs.__setitem__("spacing_m", [12.0, 12.0]), "'spacing_m' .* differs from dy, dx"),
    (lambda h: h.attrs.__delitem__("spacing_m"), "missing attribute 'spacing_m'"),
])
def test_damaged_files_one_line(tmp_path: Path, damage, match: str) -> None:
    bad = _corrupt(_write(tmp_path / "d.h5"), tmp_path / "bad.h5", damage)
    _one_line_error(bad, match, case=1)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "d.h5")
    raw = good.read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(raw[: len(raw) // 2])
    _one_line_error(trunc, "truncated or corrupted|unreadable", case=N - 1)
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5 at all")
    _one_line_error(junk, "not a readable HDF5 file")
    _one_line_error(tmp_path / "absent.h5", "file not found")
    with open_data(good) as d, pytest.raises(DataFileError, match="out of range"):
        d.fields(N)


def test_describe(tmp_path: Path) -> None:
    text = describe(_write(tmp_path / "d.h5"))
    assert SCHEMA in text
    assert "3 (2 train, 1 test; 3 done)" in text
    assert "[3, 4, 5, 6]" in text
    assert "freq_hz" in text and "10 … 12" in text


def test_encoded_chunk_is_what_hdf5_would_store(tmp_path: Path) -> None:
    x, y, t = np.arange(NX) * 10.0, np.arange(NY) * 12.0, np.arange(NT) * 3e-4
    paths = []
    for name, direct in (("plain.h5", False), ("direct.h5", True)):
        with DataWriter(tmp_path / name, n_cases=N, n_frames=NT, x=x, y=y, t=t, attrs=_attrs(),
                        param_names=["freq_hz", "source_x_m"]) as w:
            for i in range(N):
                f, v = _case(i)
                w.write_case(i, None if direct else f, v, {"freq_hz": 10.0 + i, "source_x_m": 5.0 * i},
                             split=int(i == N - 1), chunk=encode_chunk(f) if direct else None)
        paths.append(tmp_path / name)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    f0 = _case(0)[0]
    np.testing.assert_array_equal(decode_chunk(encode_chunk(f0), f0.shape), f0)
    w = DataWriter(tmp_path / "bad.h5", n_cases=1, n_frames=NT, x=x, y=y, t=t, attrs=_attrs(), param_names=[])
    with pytest.raises(DataFileError, match="does not decode"):
        w.write_case(0, None, _case(0)[1], {}, chunk=encode_chunk(f0[:-1]))
    w.abort()
    assert not (tmp_path / "bad.h5").exists()


FIXTURE = Path(__file__).parent / "fixtures" / "schema1_8x8.h5"  # written by make_schema1.py at 282c7ff


def test_schema_1_file_still_opens_and_reads_the_same_arrays() -> None:
    with open_data(FIXTURE) as d:
        assert d.attrs["schema"] == "wavesurrogate/1" and "n_spatial_dims" not in d.attrs
        assert d.n_spatial_dims == 2 and d.axes == ("case", "frame", "y", "x")
        assert d.spatial_shape == (8, 8) and d.spacing == (10.0, 10.0)
        assert (d.ny, d.nx, d.dx, d.dy) == (8, 8, 10.0, 10.0)
        np.testing.assert_array_equal(d.x, np.arange(8) * 10.0)
        np.testing.assert_allclose(d.t, np.arange(4) * 2e-3)
        np.testing.assert_array_equal(d.split, [0, 0, 1])
        fields, velocity = d.load_all()
        for i in range(3):  # the generator of make_schema1.py
            rng = np.random.default_rng(i)
            np.testing.assert_array_equal(fields[i], rng.standard_normal((4, 8, 8)).astype(np.float32))
            np.testing.assert_array_equal(velocity[i], (1500 + 100 * rng.random((8, 8))).astype(np.float32))
    assert "[case, frame, y, x] = [3, 4, 8, 8]" in describe(FIXTURE)


def test_new_files_name_their_axes(tmp_path: Path) -> None:
    with open_data(_write(tmp_path / "d.h5")) as d:
        assert d.attrs["schema"] == SCHEMA == "wavesurrogate/2"
        assert d.attrs["n_spatial_dims"] == 2 and d.attrs["axes"] == ["case", "frame", "y", "x"]
        assert d.attrs["spacing_m"] == [12.0, 10.0] == list(d.spacing) and d.spatial_shape == (NY, NX)


def test_three_dimensional_file_round_trip(tmp_path: Path) -> None:
    nz, ny, nx = 3, 4, 5
    z, y, x, t = np.arange(nz) * 7.0, np.arange(ny) * 12.0, np.arange(nx) * 10.0, np.arange(NT) * 3e-4
    rng = np.random.default_rng(5)
    cases = [(rng.standard_normal((NT, nz, ny, nx)).astype(np.float32),
              rng.uniform(1500, 1600, (nz, ny, nx)).astype(np.float32)) for _ in range(2)]
    with DataWriter(tmp_path / "d3.h5", n_cases=2, n_frames=NT, x=x, y=y, z=z, t=t,
                    attrs={**_attrs(), "dz": 7.0}, param_names=["freq_hz"]) as w:
        for i, (f, v) in enumerate(cases):
            w.write_case(i, f if i == 0 else None, v, {"freq_hz": 1.0}, chunk=encode_chunk(f) if i else None)
    with open_data(tmp_path / "d3.h5") as d:
        assert d.n_spatial_dims == 3 and d.axes == ("case", "frame", "z", "y", "x")
        assert d.spatial_shape == (nz, ny, nx) and d.spacing == (7.0, 12.0, 10.0)
        assert (d.ny, d.nx, d.dy, d.dx) == (ny, nx, 12.0, 10.0)
        fields, velocity = d.load_all()
        for i, (f, v) in enumerate(cases):
            np.testing.assert_array_equal(fields[i], f)
            np.testing.assert_array_equal(velocity[i], v)
    assert "[case, frame, z, y, x] = [2, 4, 3, 4, 5]" in describe(tmp_path / "d3.h5")


def test_plain_h5py_reads_string_attributes_as_utf8_bytes(tmp_path: Path) -> None:
    """What docs/data-format.md promises a reader without our package: fixed-length UTF-8 → bytes."""
    p = _write(tmp_path / "d.h5")
    with h5py.File(p, "r") as h:
        schema = h.attrs["schema"]
        assert isinstance(schema, bytes) and schema.decode("utf-8") == "wavesurrogate/2"
        assert h5py.check_string_dtype(h.attrs.get_id("schema").dtype).encoding == "utf-8"
        assert [a.decode("utf-8") for a in h.attrs["axes"]] == ["case", "frame", "y", "x"]
        assert h.attrs["n_spatial_dims"] == 2 and list(h.attrs["spacing_m"]) == [12.0, 10.0]
        assert h.attrs["config_yaml"].decode("utf-8") == "name: t\n"
    assert b"GCOL" not in p.read_bytes()  # no global heap: no variable-length strings anywhere
