from __future__ import annotations

import dataclasses
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import xarray as xr

import dilution.io as dio
from dilution.io import from_dataset, load, load_dataset, load_matlab_rbm, save, to_dataset
from dilution.model import RBM
from dilution.provenance import decode_attrs, encode_attrs


@dataclasses.dataclass(frozen=True)
class _Config:
    lr: float = 0.01
    schedule: tuple = (1, 2)
    note: str | None = None


def _rbm(dtype, connectivity=0.3, seed=0) -> RBM:
    return RBM.random(13, 7, connectivity=connectivity, weight_scale=1.0, bias_scale=1.0, dtype=dtype, seed=seed)


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("connectivity", [1.0, 0.3])
def test_rbm_round_trip_is_exact(tmp_path, dtype, connectivity):
    rbm = _rbm(dtype, connectivity)
    path = save(rbm, tmp_path / "m.nc", attrs={"seed": 4, "config": _Config()})
    back = load(path)
    assert isinstance(back, RBM) and back == rbm and back.dtype == np.dtype(dtype)
    for name in ("weights", "visible_bias", "hidden_bias"):
        np.testing.assert_array_equal(_bits(getattr(back, name)), _bits(getattr(rbm, name)))
    assert back.mask.dtype == bool
    np.testing.assert_array_equal(back.mask, rbm.mask)
    assert from_dataset(to_dataset(rbm)) == rbm
    attrs = load_dataset(path).attrs
    assert attrs["config"] == {"lr": 0.01, "schedule": [1, 2], "note": None}
    assert attrs["seed"] == 4 and attrs["kind"] == "dilution.RBM" and attrs["dtype"] == np.dtype(dtype).name


def test_provenance_attrs():
    ds = to_dataset(_rbm(np.float64), seed=1)
    for key in ("dilution_version", "python_version", "numpy_version", "numba_version", "created"):
        assert isinstance(ds.attrs[key], str) and ds.attrs[key]
    here = Path(dio.__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        assert "git_commit" not in ds.attrs
    else:
        assert ds.attrs["git_commit"] == head.stdout.strip()
    with pytest.raises(ValueError, match="reserved"):
        to_dataset(_rbm(np.float64), kind="x")


def test_dataset_round_trip_with_attrs(tmp_path):
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "x": (("seed", "epoch"), rng.standard_normal((2, 3)), {"units": "nats", "ok": True, "none": None}),
            "y": ("epoch", rng.standard_normal(3).astype(np.float32)),
            "flag": ("epoch", np.array([True, False, True])),
            "n": ("epoch", np.array([1, 2, 2**40], dtype=np.int64)),
            "nan": ("epoch", np.array([np.nan, 1.0, np.inf])),
        },
        coords={"epoch": [0, 10, 20], "seed": [1, 2]},
        attrs={
            "config": {"a": {"b": [1, 2.5, None]}, "flag": False},
            "label": "json:looks encoded but is a plain string",
            "empty": "",
            "vec": np.array([0.1, 0.2]),
            "tuple": (1, "a"),
            "count": 3,
        },
    )
    back = load(save(ds, tmp_path / "d.nc"))
    assert isinstance(back, xr.Dataset)
    assert back.identical(ds)
    assert back["y"].dtype == np.float32 and back["flag"].dtype == bool and back["n"].dtype == np.int64
    np.testing.assert_array_equal(_bits(back["x"].values), _bits(ds["x"].values))
    assert back.attrs["config"] == {"a": {"b": [1, 2.5, None]}, "flag": False}
    assert back.attrs["label"] == ds.attrs["label"] and back["x"].attrs["none"] is None
    assert back.attrs["tuple"] == [1, "a"]  # documented: tuples come back as lists


def test_attr_encoding_is_reversible_and_rejects_objects():
    attrs = {"a": None, "b": True, "c": "json:x", "d": {"e": [1, {"f": None}]}, "g": 1.5, "h": "plain"}
    enc = encode_attrs(attrs)
    assert all(isinstance(v, (str, int, float)) for v in enc.values())
    assert decode_attrs(enc) == attrs
    with pytest.raises(TypeError, match="cannot store a object"):
        encode_attrs({"x": {"y": object()}})
    with pytest.raises(TypeError, match="dict keys must be strings"):
        encode_attrs({"x": {1: 2}})


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    old = _rbm(np.float64, seed=1)
    target = save(old, tmp_path / "m.nc")

    def write_half_then_fail(ds, path):
        Path(path).write_bytes(b"\x89HDF partial")
        raise RuntimeError("disk pulled out")

    monkeypatch.setattr(dio, "_write_netcdf", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk pulled out"):
        save(_rbm(np.float64, seed=2), target)
    monkeypatch.undo()
    assert _listing(tmp_path) == ["m.nc"]
    assert load(target) == old


def test_failed_fsync_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    old = _rbm(np.float32, seed=1)
    target = save(old, tmp_path / "m.nc")

    def boom(fd):
        raise OSError("fsync failed")

    monkeypatch.setattr(dio.os, "fsync", boom)
    with pytest.raises(OSError, match="fsync failed"):
        save(_rbm(np.float32, seed=2), target)
    with pytest.raises(OSError, match="fsync failed"):
        save(old, tmp_path / "new.nc")
    monkeypatch.undo()
    assert _listing(tmp_path) == ["m.nc"]
    assert load(target) == old


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        load(tmp_path / "missing.nc")
    # a folder and an unreadable file were reported as "no such file" and "not a dilution file"
    (tmp_path / "folder.nc").mkdir()
    with pytest.raises(ValueError, match=r"folder\.nc is a folder; expected a file"):
        load(tmp_path / "folder.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not a netCDF file")
    with pytest.raises(ValueError, match=r"junk\.nc is not a dilution file"):
        load(junk)
    broken = to_dataset(_rbm(np.float64)).drop_vars("hidden_bias")
    save(broken, tmp_path / "broken.nc")
    with pytest.raises(ValueError, match=r"broken\.nc.*lacks variable\(s\) \['hidden_bias'\]"):
        load(tmp_path / "broken.nc")
    with pytest.raises(ValueError, match="not a dilution RBM"):
        from_dataset(xr.Dataset())
    wrong_dims = to_dataset(_rbm(np.float64)).rename_dims(visible="v")
    with pytest.raises(ValueError, match="dims"):
        from_dataset(wrong_dims)


def test_save_errors(tmp_path):
    with pytest.raises(TypeError, match="dilution.RBM, a TrainState or an xarray.Dataset"):
        save(np.zeros(3), tmp_path / "a.nc")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(_rbm(np.float64), tmp_path / "no" / "a.nc")
    with pytest.raises(TypeError, match="cannot store"):
        save(_rbm(np.float64), tmp_path / "a.nc", attrs={"x": object()})
    assert _listing(tmp_path) == []
    # these named the hidden temporary file ("Is a directory: '.adir.nc.<hex>.tmp' -> 'adir.nc'")
    (tmp_path / "adir.nc").mkdir()
    with pytest.raises(IsADirectoryError, match=r"^cannot write .*adir\.nc: it is a folder$"):
        save(_rbm(np.float64), tmp_path / "adir.nc")


@pytest.mark.parametrize("call", [
    lambda: save(_rbm(np.float64), None), lambda: load(None), lambda: load_dataset(5), lambda: dio.load_state(None),
    lambda: load_matlab_rbm(None),
], ids=["save", "load", "load_dataset", "load_state", "load_matlab_rbm"])
def test_a_path_of_another_type_is_named(call):
    # pathlib's "expected str, bytes or os.PathLike object, not NoneType" did not say which argument
    with pytest.raises(TypeError, match=r"^path must be a file path \(str or os\.PathLike\), got (NoneType|int)$"):
        call()


@pytest.mark.parametrize("attrs, error, message", [
    ([1, 2], TypeError, r"^attrs must be a mapping of attribute names \(str\) to values, got list$"),
    ({3: "x"}, TypeError, r"^attrs must be a mapping with str keys \(netCDF attribute names\), got key 3$"),
    ({"": 1}, ValueError, r"^attribute name '' cannot be stored in netCDF: it is empty$"),
    ({"a/b": 1}, ValueError, r"^attribute name 'a/b' cannot be stored in netCDF: '/' and control characters"),
    ({"-a": 1}, ValueError, r"^attribute name '-a' cannot be stored in netCDF: it must start with"),
    ({"a ": 1}, ValueError, r"^attribute name 'a ' cannot be stored in netCDF: it ends in a space$"),
    ({"_NCProperties": 1}, ValueError, r"^attribute name '_NCProperties' cannot be stored in netCDF: netCDF-4 reserves"),
    ({"x" * 257: 1}, ValueError, r"cannot be stored in netCDF: it is longer than 256 bytes"),
    ({"z": 1j}, TypeError, r"^attribute z: cannot store a complex; expected str, real number"),
    ({"z": np.complex128(1j)}, TypeError, r"^attribute z: cannot store a complex128;"),
    ({"z": Fraction(1, 3)}, TypeError, r"^attribute z: cannot store a Fraction;"),
    ({"z": np.datetime64("2020-01-01")}, TypeError, r"^attribute z: cannot store a datetime64;"),
    ({"z": np.bytes_(b"x")}, TypeError, r"^attribute z: cannot store a bytes_;"),
])
def test_attrs_netcdf_cannot_hold_are_refused_before_writing(tmp_path, attrs, error, message):
    # these failed inside the netCDF library ("keywords must be strings", "illegal data type for
    # attribute", "NetCDF: Name contains illegal characters") or in json
    old = _rbm(np.float64, seed=1)
    target = save(old, tmp_path / "m.nc")
    with pytest.raises(error, match=message):
        save(_rbm(np.float64, seed=2), target, attrs=attrs)
    assert _listing(tmp_path) == ["m.nc"]
    assert load(target) == old


def test_numbers_netcdf_has_no_type_for_are_stored_as_json(tmp_path):
    # a float16 or an integer beyond 64 bits failed inside netCDF ("illegal data type for attribute")
    attrs = {"half": np.float16(1.5), "halves": np.array([0.5, 2.0], dtype=np.float16), "big": 2**70,
             "negative": -(2**63) - 1}
    back = load_dataset(save(_rbm(np.float64), tmp_path / "m.nc", attrs=attrs)).attrs
    assert back["half"] == 1.5 and back["halves"] == [0.5, 2.0]
    assert back["big"] == 2**70 and back["negative"] == -(2**63) - 1
    # the numbers netCDF has a type for are kept as they were
    kept = {"i8": np.int8(3), "f4": np.float32(0.1), "u8": 2**63, "ints": np.array([1, 2], dtype=np.int16)}
    back = load_dataset(save(_rbm(np.float64), tmp_path / "k.nc", attrs=kept)).attrs
    assert back["i8"] == 3 and back["i8"].dtype == np.int8 and back["f4"] == np.float32(0.1)
    assert back["u8"] == 2**63 and back["ints"].dtype == np.int16


def test_a_folder_that_refuses_the_file_is_named_with_the_file_asked_for(tmp_path, monkeypatch):
    real = os.open

    def read_only(path, flags, *args):  # root writes into a chmod 555 folder, so the refusal is simulated
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(PermissionError) as err:
        save(_rbm(np.float64), tmp_path / "m.nc")
    assert str(err.value) == f"cannot write {tmp_path / 'm.nc'}: Permission denied (in folder {tmp_path})"


def test_load_matlab_rbm(models_dir):
    rbm = load_matlab_rbm(models_dir / "mnistvh.mat")
    mat = scipy.io.loadmat(models_dir / "mnistvh.mat")
    assert (rbm.n_visible, rbm.n_hidden) == (784, 15) and rbm.dtype == np.float64 and rbm.connectivity == 1.0
    np.testing.assert_array_equal(rbm.weights, mat["vishid"])
    np.testing.assert_array_equal(rbm.visible_bias, mat["visbiases"].ravel())
    np.testing.assert_array_equal(rbm.hidden_bias, mat["hidbiases"].ravel())


def test_load_matlab_rbm_errors(tmp_path):
    p = tmp_path / "m.mat"
    scipy.io.savemat(p, {"vishid": np.zeros((4, 2)), "visbiases": np.zeros((1, 4))})
    with pytest.raises(ValueError, match=r"lacks RBM variable\(s\) \['hidbiases'\]"):
        load_matlab_rbm(p)
    scipy.io.savemat(p, {"vishid": np.zeros((4, 2)), "visbiases": np.zeros((1, 3)), "hidbiases": np.zeros((1, 2))})
    with pytest.raises(ValueError, match=r"visbiases must have shape \(1, 4\)"):
        load_matlab_rbm(p)
    p.write_text("hello")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        load_matlab_rbm(p)
    with pytest.raises(FileNotFoundError, match="none.mat"):
        load_matlab_rbm(tmp_path / "none.mat")
    (tmp_path / "adir.mat").mkdir()  # was "no such file"
    with pytest.raises(ValueError, match=r"adir\.mat is a folder; expected a MATLAB"):
        load_matlab_rbm(tmp_path / "adir.mat")


def test_strings_longer_than_those_of_a_file_read_earlier_are_saved_whole(tmp_path):
    # A Dataset read from disk carries its string width in the encoding ('<U6' for "static");
    # concatenated with longer labels and saved, xarray wrote them cut to that width ("ncg-p0").
    def labelled(methods, values):
        ds = xr.Dataset({"x": ("method", np.asarray(values, dtype=float))}, coords={"method": methods})
        ds["x"].attrs.update(long_name="x", units="1")
        ds["method"].attrs.update(long_name="method", units="1")
        return ds

    save(labelled(["dense", "static"], [1, 2]), tmp_path / "a.nc")
    read = load_dataset(tmp_path / "a.nc")
    assert np.dtype(read["method"].encoding["dtype"]).itemsize // 4 == 6
    joined = xr.concat([read, labelled(["ncg-p0.5"], [3])], dim="method")
    save(joined, tmp_path / "b.nc")
    assert list(load_dataset(tmp_path / "b.nc")["method"].values) == ["dense", "static", "ncg-p0.5"]
    assert joined["method"].encoding["dtype"] == read["method"].encoding["dtype"]  # the caller's object untouched


def test_an_unreadable_file_is_reported_as_such(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "m.nc"
    save(_rbm(np.float64), path)
    real_open = builtins.open

    def denied(file, *args, **kwargs):  # root reads a chmod 000 file, so the refusal is simulated
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ValueError, match=r"cannot read .*m\.nc: Permission denied") as err:
        load(path)
    assert "not a dilution file" not in str(err.value)

