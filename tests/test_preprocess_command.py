"""``python -m talking_head preprocess``: the command-line wrapper around ``preprocess_videos``."""

from __future__ import annotations

import pytest
from test_preprocess import voxceleb  # noqa: F401 - the fixture: a tiny VoxCeleb-layout folder of mp4s

from talking_head.cli import main
from talking_head.data.format import read_frames, read_index
from talking_head.data.video import person_split


def test_the_command_writes_a_dataset_with_held_out_people(voxceleb, tmp_path, capsys):  # noqa: F811
    main(["preprocess", "--src", str(voxceleb), "--dst", str(tmp_path), "--image-size", "32", "--max-frames", "3",
          "--landmarks", "dlib", "--heldout-fraction", "1"])
    image_size, records = read_index(tmp_path)
    assert image_size == 32
    assert [(r.person, r.split, r.num_frames) for r in records] == [("id00001", "heldout", 3)]  # id00002: no face
    assert read_frames(tmp_path, records[0])[0].shape == (3, 32, 32, 3)
    assert "1 clips of 1 people (1 held-out clips)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", "--dst", str(tmp_path)])
    assert exit_info.value.code == 2 and "required: --src" in capsys.readouterr().err


def test_people_are_split_by_a_stable_hash_of_their_name():
    people = [f"id{i:05d}" for i in range(400)]
    assert {person_split(p, 0.0) for p in people} == {"train"}
    assert {person_split(p, 1.0) for p in people} == {"heldout"}
    heldout = [p for p in people if person_split(p, 0.2) == "heldout"]
    assert 50 < len(heldout) < 110  # about a fifth
    assert heldout == [p for p in people if person_split(p, 0.2) == "heldout"]  # the same on every run
    assert set(heldout) <= {p for p in people if person_split(p, 0.5) == "heldout"}  # a larger share adds people
