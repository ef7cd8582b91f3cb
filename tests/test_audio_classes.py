"""``python -m sccl.audio --classes / --speakers-order``: class and speaker ids from a map are the same whichever
classes a folder holds, a map's mistakes are one error line with nothing written, and a file where mapped classes
have no samples loads and splits. Recordings are short synthetic tones; 16 channels keep each conversion fast."""

import json

import h5py
import numpy as np
import pytest
from scipy.io import wavfile

import sccl.audio.convert as audio
from sccl.core.entry import run_cli
from sccl.core.errors import ConfigError
from sccl.data.hdf5 import KEYS, load_shd
from sccl.data.splits import make_split
from sccl.learn.training import load_dataset
from tests.test_audio_converter import nothing_written, one_error_line


PATTERN = r"(?P<speaker>[a-z]+)_(?P<label>[a-z]+)_\d+\.wav"
FS = 48000


def corpus(folder, words, speakers=("anna", "ben", "carl")):
    folder.mkdir(parents=True, exist_ok=True)
    for s, speaker in enumerate(speakers):
        for w, word in enumerate(words):
            t = np.arange(int(FS * 0.03)) / FS
            x = 0.5 * np.sin(2 * np.pi * (400.0 + 300 * w + 41 * s) * t) * np.hanning(len(t))
            wavfile.write(folder / f"{speaker}_{word}_0.wav", FS, (x * 32000).astype(np.int16))
    return folder


def convert(rec, out, *extra):
    return run_cli(audio.main, ["--input", str(rec), "--labels", PATTERN, "--out-dir", str(out),
                                "--channels", "16", *extra])


def read(out, part="train"):
    data = load_shd(out / f"shd_{part}.h5")
    return data, [k.decode() for k in data.keys]


def ids_by_file(rec, out, part="train"):
    """{(speaker, word): class id} of one output file (samples are in file-name order within each file)."""
    data, _ = read(out, part)
    with h5py.File(out / f"shd_{part}.h5", "r") as f:
        speaker_names = json.loads(f.attrs["speaker_names"])
    names = sorted(p.name for p in rec.iterdir())
    kept = [n for n in names if n.split("_")[0] in {speaker_names[s] for s in data.speakers}]
    return {tuple(n.split("_")[:2]): int(label) for n, label in zip(kept, data.labels)}


def test_two_folders_with_different_classes_agree_with_a_map_and_not_without(tmp_path, capsys):
    one = corpus(tmp_path / "a", ["one", "three", "two"])
    other = corpus(tmp_path / "b", ["zero", "two"])
    # without a map the ids follow the names present: "two" is 2 in one folder and 1 in the other
    assert convert(one, tmp_path / "a_sorted") == 0
    assert "class ids: 0=one, 1=three, 2=two" in capsys.readouterr().out
    assert convert(other, tmp_path / "b_sorted") == 0
    assert "class ids: 0=two, 1=zero" in capsys.readouterr().out
    assert ids_by_file(one, tmp_path / "a_sorted")[("anna", "two")] == 2
    assert ids_by_file(other, tmp_path / "b_sorted")[("anna", "two")] == 0
    # with the same map both folders give every word its position in the map
    order = "zero,one,two,three"
    assert convert(one, tmp_path / "a_map", "--classes", order) == 0
    assert "class ids: from --classes zero,one,two,three (4 classes, 3 with recordings)" in capsys.readouterr().out
    assert convert(other, tmp_path / "b_map", "--classes", order) == 0
    position = {word: i for i, word in enumerate(order.split(","))}
    for rec, out in ((one, tmp_path / "a_map"), (other, tmp_path / "b_map")):
        for part in ("train", "test"):
            found = ids_by_file(rec, out, part)
            assert found and all(label == position[word] for (_, word), label in found.items())
            assert read(out, part)[1] == order.split(",")


def test_a_csv_map_with_gaps_keeps_its_ids_and_the_file_loads_and_splits(tmp_path):
    rec = corpus(tmp_path / "rec", ["zero", "five", "two"], speakers=("anna", "ben", "carl", "dora", "emil", "fay"))
    table = tmp_path / "classes.csv"
    table.write_text("label,id\nzero,0\ntwo,2\nfive,5\nseven,7\n")
    out = tmp_path / "out"
    assert convert(rec, out, "--classes", str(table)) == 0
    data, keys = read(out)
    assert keys == ["zero", "class 1", "two", "class 3", "class 4", "five", "class 6", "seven"]
    assert set(ids_by_file(rec, out).items()) == {((s, w), i) for s in ("anna", "ben", "carl", "dora")
                                                  for w, i in (("zero", 0), ("five", 5), ("two", 2))}
    dataset = load_dataset(out / "shd_train.h5", nb_steps=10, max_time=0.1)
    assert dataset.shape.nb_classes == 8  # the output size covers every mapped id
    assert dataset.shape.classes == (0, 2, 5)  # the classes with samples
    assert dataset.shape.class_names[5] == "five"
    split = make_split("class_incremental", 5, dataset.labels, dataset.speakers, nb_classes=8)
    assert set(dataset.labels[split["new_train"]]) == {5} and 5 not in set(dataset.labels[split["pretrain_train"]])
    with pytest.raises(ConfigError, match="class 7 has no samples"):
        make_split("class_incremental", 7, dataset.labels, dataset.speakers, nb_classes=8)


def test_shd_digits_maps_the_words_onto_shd_ids_and_keys(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", ["nine", "sechs", "zero"])
    out = tmp_path / "out"
    assert convert(rec, out, "--classes", "shd-digits") == 0
    assert "(20 classes, 3 with recordings)" in capsys.readouterr().out
    data, keys = read(out)
    assert keys == list(KEYS) and keys[16] == "german sechs"
    assert set(ids_by_file(rec, out).values()) == {9, 16, 0}
    assert ids_by_file(rec, out)[("ben", "sechs")] == 16
    with h5py.File(out / "shd_train.h5", "r") as f:
        assert f.attrs["class_ids"] == "--classes shd-digits"


def test_speakers_order_sets_the_speaker_ids_and_the_default_test_speaker(tmp_path):
    rec = corpus(tmp_path / "rec", ["one", "two"])
    out = tmp_path / "out"
    assert convert(rec, out, "--speakers-order", "carl,ben,anna,dora") == 0
    train, test = load_shd(out / "shd_train.h5"), load_shd(out / "shd_test.h5")
    assert set(train.speakers.tolist()) == {0, 1} and set(test.speakers.tolist()) == {2}  # anna: last present
    with h5py.File(out / "shd_test.h5", "r") as f:
        assert json.loads(f.attrs["speaker_names"]) == ["carl", "ben", "anna", "dora"]
        assert json.loads(f.attrs["test_speakers"]) == ["anna"]


@pytest.mark.parametrize("flag, value, words, needles", [
    ("--classes", "zero,one", ["zero", "one", "two"], ["--classes", "label 'two'", "not in the map", "zero, one"]),
    ("--classes", "zero", ["zero", "one", "two"], ["labels 'one', 'two'", "add them"]),
    ("--classes", "shd-digits", ["zero", "ten"], ["label 'ten'", "not in the map", "zero, one"]),
    ("--speakers-order", "anna,ben", ["zero", "one"], ["--speakers-order", "speaker 'carl'", "not in the map"]),
    ("--classes", "zero,,one", ["zero", "one"], ["empty name"]),
    ("--classes", "zero,one,zero", ["zero", "one"], ["'zero' is listed twice"]),
])
def test_a_map_that_does_not_fit_is_one_error_line_and_nothing_is_written(tmp_path, capsys, flag, value, words,
                                                                          needles):
    rec = corpus(tmp_path / "rec", words)
    out = tmp_path / "out"
    assert convert(rec, out, flag, value) == 2
    one_error_line(capsys, *needles)
    nothing_written(out)


@pytest.mark.parametrize("table, needles", [
    ("label,id\nzero,0\none,2\ntwo,2\n", ["line 4", "id 2 is already given", "line 3", "unique"]),
    ("label,id\nzero,0\nzero,1\n", ["line 3", "label 'zero' is listed twice"]),
    ("label,id\nzero,0\none,-1\n", ["line 3", "id '-1' is not an integer >= 0"]),
    ("label,id\nzero,0\none,x\n", ["line 3", "id 'x' is not an integer >= 0"]),
    ("label,id\nzero,0\none\n", ["line 3", "needs both a label and an id"]),
    ("name,number\nzero,0\n", ["needs the columns label,id"]),
    ("", ["needs the columns label,id"]),
])
def test_a_bad_class_table_is_one_error_line(tmp_path, capsys, table, needles):
    rec = corpus(tmp_path / "rec", ["zero", "one"])
    path = tmp_path / "classes.csv"
    path.write_text(table)
    out = tmp_path / "out"
    assert convert(rec, out, "--classes", str(path)) == 2
    one_error_line(capsys, str(path), *needles)
    nothing_written(out)


def test_a_missing_class_table_is_one_error_line(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", ["zero", "one"])
    assert convert(rec, tmp_path / "out", "--classes", str(tmp_path / "nope.csv")) == 2
    one_error_line(capsys, "nope.csv: no such file")


def test_a_class_table_that_is_not_csv_is_one_error_line(tmp_path, capsys):
    rec = corpus(tmp_path / "rec", ["zero", "one"])
    table = tmp_path / "classes.txt"
    table.write_text("label,id\nzero,0\none,1\n")
    assert convert(rec, tmp_path / "out", "--classes", str(table)) == 2
    one_error_line(capsys, "classes.txt: a class table must be a .csv file")
