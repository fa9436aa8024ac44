"""The mouth-window generator: where it may change pixels, how it learns, and how it is shipped and saved."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from talking_head.avatar import Avatar
from talking_head.commands.train_mouth import install
from talking_head.config import ModelConfig, mouth_model
from talking_head.data.synthetic import render_video
from talking_head.errors import InputError
from talking_head.models.talking_head_model import MOUTH_FILE, TalkingHeadModel
from talking_head.landmarks.mouth import mouth_opening
from talking_head.models import Generator, PersonalGenerator
from talking_head.mouth_finetune import finetune_mouth, leave_one_out_windows, mouth_loss
from talking_head.mouth_training import MouthTrainOptions, found_landmarks, train_mouth
from talking_head.mouth_window import (OPEN_FROM, TRAINING_WINDOW, refine_mouths, training_points, training_windows,
                                       window_corners, window_side)
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.face_render import render_faces, unused_finetuning
from talking_head.shot_bank import between_the_lips
from talking_head.tensors import images_to_tensor


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic talking clip at 128 px: (T, S, S, 3) frames and their exact (T, 68, 2) landmarks."""
    return render_video(3, 0, 16, 128)


@pytest.fixture(scope="module")
def mouth_weights(tiny_weights, tmp_path_factory: pytest.TempPathFactory):
    """The tiny weights with a mouth generator meta-trained for a few steps by ``train-mouth``, and its log."""
    out = tmp_path_factory.mktemp("mouth_weights")
    shutil.copytree(tiny_weights, out, dirs_exist_ok=True)
    options = MouthTrainOptions(run=str(out.parent / f"{out.name}-run"), weights=str(tiny_weights), videos=2,
                                heldout_videos=1, frames=12, image_size=128, ks=(2,), targets=4, steps=4,
                                batch_size=4, save_every=2)
    log: list[str] = []
    install(train_mouth(options, log.append), out, options)
    return out, [json.loads(line) for line in log]


def painting_mouth(face: ModelConfig) -> PersonalGenerator:
    """An untrained mouth generator whose mask paints everywhere it may (an untrained one returns the warp)."""
    generator = Generator(mouth_model(face))
    torch.nn.init.constant_(generator.mask_conv.bias, -7.0)
    embedding = torch.randn(1, face.embedding_dim)
    return PersonalGenerator.from_generator(generator, generator.project(embedding), embedding, generator.config)


def test_every_pixel_outside_an_open_mouths_inner_lips_stays_the_warps(clip, tiny_config):
    frames, points = clip
    opening = mouth_opening(points)
    rows = [int(np.argmax(opening)), int(np.argmin(opening))]
    assert opening[rows[0]] > OPEN_FROM > opening[rows[1]]  # one open mouth, one shut
    warped, targets = images_to_tensor(frames[rows]), torch.from_numpy(points[rows])
    out = refine_mouths(painting_mouth(tiny_config), warped, targets)
    assert torch.equal(out[1], warped[1])  # a shut mouth is not repainted
    side = window_side(targets[:1], 128)
    (x, y), = window_corners(targets[:1], side, 128)
    changed = (out[0] != warped[0]).any(dim=0)
    assert changed[y:y + side, x:x + side].sum() > 50  # it painted inside the lips...
    lips = between_the_lips(targets[:1], 128)[0, 0] > 0
    assert not (changed & ~lips).any()  # ...and nowhere else: not the lips, not the window's rest, not outside it


def test_training_windows_and_their_points_agree(clip):
    """A mark at the mouth's corner in the frame is found at that corner's point in the training window."""
    frames, points = clip
    frame = images_to_tensor(frames[:1]) * 0 - 1
    points = points[:1].copy()
    points[0, 48] = x, y = np.round(points[0, 48]).astype(int)  # the corner on a pixel's centre
    frame[0, :, y - 1:y + 2, x - 1:x + 2] = 1.0
    window = training_windows(frame, torch.from_numpy(points))[0, 0]
    weight = (window + 1).clamp_min(0).numpy()
    rows, cols = np.indices(weight.shape)
    mark = np.array([(cols * weight).sum(), (rows * weight).sum()]) / weight.sum()  # the mark's centre
    corner = training_points(torch.from_numpy(points))[0, 48].numpy()
    assert window.shape == (TRAINING_WINDOW, TRAINING_WINDOW)
    assert np.hypot(*(mark - corner)) < 0.5  # window pixels (about 2 a frame pixel here)


def test_fine_tuning_on_the_persons_own_shots_lowers_their_loss(clip, tiny_config):
    frames, points = clip
    torch.manual_seed(0)  # measured over seeds 0-4: the loss falls by 0.05-0.08
    generator = Generator(replace(mouth_model(tiny_config), image_size=32, base_channels=8,
                                  generator_bottleneck_resolution=8))  # smaller than shipped: seconds on a CPU
    windows = leave_one_out_windows(images_to_tensor(frames[::2]), torch.from_numpy(points[::2]),
                                    generator.config.image_size, np.random.default_rng(0))
    assert windows is not None and len(windows) >= 2
    embedding = torch.randn(1, tiny_config.embedding_dim)
    with torch.no_grad():
        before = float(mouth_loss(generator, generator.project(embedding), windows))
    tuned = finetune_mouth(generator, embedding, windows, steps=20, lr=3e-3)
    with torch.no_grad():
        after = float(mouth_loss(tuned.generator, tuned.psi, windows))
    assert after < before - 0.01


def test_no_open_mouth_among_the_shots_leaves_nothing_to_fine_tune_on(clip):
    frames, points = clip
    shut = np.flatnonzero(mouth_opening(points) <= OPEN_FROM)
    assert leave_one_out_windows(images_to_tensor(frames[shut]), torch.from_numpy(points[shut]), 64,
                                 np.random.default_rng(0)) is None


def test_train_mouth_scores_held_out_videos_and_installs_into_the_weights(mouth_weights):
    folder, log = mouth_weights
    assert [entry["step"] for entry in log] == [2, 4]
    assert {"heldout_ssim", "heldout_warp_ssim"} <= set(log[-1])
    config = json.loads((folder / "config.json").read_text())
    assert config["mouth"] == mouth_model(ModelConfig.from_dict(config["model"])).to_dict()
    assert not any(str(value).startswith("/") for value in config["provenance"]["mouth"].values())  # no machine path
    model = TalkingHeadModel.from_pretrained(str(folder))
    assert model.mouth is not None and (folder / MOUTH_FILE).is_file()


def test_a_saved_avatar_keeps_its_mouth_generator(mouth_weights, synthetic_photos, tmp_path):
    folder, _ = mouth_weights
    pipe = TalkingHeadPipeline.from_pretrained(str(folder), device="cpu")
    avatar = pipe.personalize(synthetic_photos, steps=2)
    assert avatar.mouth is not None
    targets = avatar.source_landmarks[None].copy()
    targets[0, 55:60, 1] += 4.0  # the mouth opened
    targets[0, 65:68, 1] += 4.0
    loaded = Avatar.load(avatar.save(tmp_path / "a.safetensors"))
    assert loaded.mouth is not None
    assert np.array_equal(render_faces(loaded, targets, 64, mouth=True), render_faces(avatar, targets, 64, mouth=True))


def test_an_avatar_whose_mouth_generator_is_not_this_versions_is_refused(mouth_weights, synthetic_photos, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder, _ = mouth_weights
    avatar = TalkingHeadPipeline.from_pretrained(str(folder), device="cpu").personalize(synthetic_photos[:1], steps=0)
    path = avatar.save(tmp_path / "a.safetensors")
    with safe_open(str(path), framework="pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
    metadata["mouth"] = json.dumps({**json.loads(metadata["mouth"]), "base_channels": 512})
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InputError, match="mouth generator of another size"):
        Avatar.load(path)
    del metadata["mouth"]  # its tensors without saying what they are
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(InputError, match="holds tensors an avatar has not"):
        Avatar.load(path)


def test_fine_tuning_steps_are_used_when_the_mouth_generator_is_on():
    assert unused_finetuning(40, generator=False, mouth=True) is None
    assert "which are off" in unused_finetuning(40, generator=False, mouth=False)


def test_found_landmarks_are_dlibs_where_it_finds_a_face_and_the_exact_ones_elsewhere(clip):
    frames, exact = clip
    blank = np.concatenate([frames[:2], np.zeros_like(frames[:1])])
    found = found_landmarks(blank, exact[:3])
    np.testing.assert_array_equal(found[2], exact[2].astype(np.float32))  # no face: kept
    moved = np.abs(found[:2] - exact[:2]).max(axis=(1, 2))
    assert (moved > 0).all() and (moved < 0.1 * 128).all()  # dlib's own points, near the true ones


def test_a_run_started_from_the_weights_trains_their_mouth_generator_on_and_keeps_its_history(mouth_weights, tmp_path):
    folder, _ = mouth_weights
    options = MouthTrainOptions(run=str(tmp_path / "run"), weights=str(folder), videos=2, heldout_videos=1,
                                frames=12, image_size=128, ks=(2,), targets=4, steps=2, batch_size=4, save_every=2,
                                start="weights", landmarks="dlib")
    log: list[str] = []
    out = tmp_path / "weights"
    shutil.copytree(folder, out)
    install(train_mouth(options, log.append), out, options)
    shipped = TalkingHeadModel.from_pretrained(str(folder))
    before = dict(shipped.mouth.named_parameters())
    after = dict(TalkingHeadModel.from_pretrained(str(out)).mouth.named_parameters())
    fresh = dict(Generator(mouth_model(shipped.config)).named_parameters())

    def farthest(a: dict, b: dict) -> float:
        return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)

    # Two small steps from the shipped generator: its weights moved, a little, not replaced by a new initialisation
    # (the spectral norms' power-iteration buffers, which every forward pass moves, are not weights).
    assert 0 < farthest(after, before) < 0.1 * farthest(fresh, before)
    provenance = json.loads((out / "config.json").read_text())["provenance"]["mouth"]
    assert provenance["start"] == "weights" and provenance["landmarks"] == "dlib"
    assert provenance["started_from"]["start"] == "new"


def test_starting_from_weights_without_a_mouth_generator_says_so(tiny_weights, tmp_path):
    options = MouthTrainOptions(run=str(tmp_path / "run"), weights=str(tiny_weights), videos=2, heldout_videos=1,
                                frames=12, image_size=128, ks=(2,), targets=4, steps=2, batch_size=4, start="weights")
    with pytest.raises(InputError, match="no mouth generator"):
        train_mouth(options)
