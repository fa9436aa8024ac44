"""The product's main job without the UI: photos + driving video -> personalised, watermarked mp4."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from talking_head import pipeline as pipeline_module
from talking_head import face_render, render
from talking_head.avatar import Avatar
from talking_head.config import ModelConfig
from talking_head.data.synthetic import render_video
from talking_head.errors import InputError
from talking_head.face_render import render_faces
from talking_head.finetune import FinetuneConfig, personalize
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.landmarks.detect import NoFaceError, get_detector
from talking_head.landmarks.rasterize import draw_landmarks
from talking_head.landmarks.smooth import CentredSmoother
from talking_head.landmarks.track import TrackConfig
from talking_head.media import VideoSink, iter_video_frames, probe_video
from talking_head.pipeline import TalkingHeadPipeline
from talking_head.render import RenderConfig
from talking_head.shot_bank import paint_region, warp_from_bank
from talking_head.tensors import to_network


@pytest.fixture(scope="module")
def pipe(trained_tiny: Path) -> TalkingHeadPipeline:
    return TalkingHeadPipeline.from_pretrained(trained_tiny, device="cpu", landmark_backend="dlib")


@pytest.fixture(scope="module")
def avatar(pipe: TalkingHeadPipeline, synthetic_photos: list[Path]) -> Avatar:
    return pipe.personalize(synthetic_photos, steps=2)


@pytest.mark.slow
def test_whole_pipeline_writes_mp4_with_driver_frames_fps_and_audio(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                                     driver_video: Path, tmp_path: Path) -> None:
    seen = []
    result = pipe.animate(avatar, driver_video, tmp_path / "out.mp4", RenderConfig(output_size=96),
                          progress=lambda fraction, _: seen.append(fraction))
    info, driver = probe_video(result.path), probe_video(driver_video)
    assert (info.num_frames, info.fps) == (driver.num_frames, driver.fps) == (30, 25.0)
    assert (info.width, info.height) == (96, 96) and info.has_audio
    assert result.frames_without_face == 0
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    assert not list(tmp_path.glob("*.partial*"))


def test_side_by_side_and_paste_back_layouts(pipe: TalkingHeadPipeline, avatar: Avatar, driver_video: Path,
                                              tmp_path: Path) -> None:
    side = pipe.animate(avatar, driver_video, tmp_path / "side.mp4", RenderConfig(output_size=64, side_by_side=True))
    assert (side.width, side.height) == (64 * 3, 64)  # driver (square) | source | result
    pasted = pipe.animate(avatar, driver_video, tmp_path / "paste.mp4", RenderConfig(output_size=128, paste_back=True))
    photo_h, photo_w = avatar.photo.shape[:2]
    assert pasted.height == 128 and pasted.width == round(photo_w * 128 / photo_h / 2) * 2
    frame = next(iter_video_frames(pasted.path))
    # Outside the face, a pasted frame is the photo itself (resized), not generated pixels.
    photo_small = np.asarray(torch.nn.functional.interpolate(
        torch.from_numpy(np.array(avatar.photo)).permute(2, 0, 1)[None].float(), size=(128, pasted.width),
        mode="area")[0].permute(1, 2, 0))
    corner = (slice(0, 16), slice(0, 16))
    assert np.abs(frame[corner].astype(float) - photo_small[corner]).mean() < 12


def test_paste_back_takes_the_moved_crop_whole_but_for_a_thin_border(avatar: Avatar) -> None:
    """On the texture path the crop's border is the photo's own (the warp pins it), so the blend needs only a
    thin feather there: a wide one mixed a head that had moved with the photo's unmoved neck (a grey band
    under the chin, seen at 512 px)."""
    from talking_head.landmarks.align import from_crop_coords
    from talking_head.render import paste_into_photo

    assert avatar.texture_path
    photo = avatar.photo
    face = np.full((128, 128, 3), 255, np.uint8)  # a crop unlike the photo everywhere
    pasted = paste_into_photo(avatar, face, avatar.source_landmarks, photo.shape[0]).astype(float)
    assert pasted.shape == photo.shape  # an even height: no resizing in the way
    height, width = photo.shape[:2]
    checked = 0
    for fraction in (0.05, 0.95):  # 5 % of the crop in from its left / right and top / bottom edges
        for point in ((fraction, 0.5), (0.5, fraction)):
            x, y = np.round(from_crop_coords(np.array([point]) * 127, avatar.photo_box, 128)[0]).astype(int)
            if 0 <= x < width and 0 <= y < height:
                assert pasted[y, x].min() > 250, (point, pasted[y, x])
                checked += 1
    assert checked >= 2
    x0, y0, side = avatar.photo_box
    outside = (int(y0 + side / 2), int(x0 + side + 2))  # just beyond the crop's right edge
    if outside[1] < width:
        assert np.abs(pasted[outside] - photo[outside]).max() < 1


def test_rendering_streams_frames_instead_of_holding_the_video(pipe: TalkingHeadPipeline, avatar: Avatar,
                                                               driver_video: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory must not grow with the driver's length: the decoder may run at most the pipeline's queues and
    the batches in its stages ahead of the encoder (a render that decoded the whole driver first would be
    30 frames ahead here)."""
    decoded, written, ahead = [0], [0], []
    real_frames, real_write = render.iter_video_frames, VideoSink.write

    def counted_frames(*args, **kwargs):
        for frame in real_frames(*args, **kwargs):
            decoded[0] += 1
            ahead.append(decoded[0] - written[0])
            yield frame

    def counted_write(self, frame):
        written[0] += 1
        real_write(self, frame)

    monkeypatch.setattr(render, "iter_video_frames", counted_frames)
    monkeypatch.setattr(VideoSink, "write", counted_write)
    result = pipe.animate(avatar, driver_video, tmp_path / "out.mp4", RenderConfig(output_size=64, batch_size=2))
    assert decoded[0] == written[0] == result.num_frames == 30
    assert max(ahead) <= render.max_frames_in_flight(2, CentredSmoother().radius) == 14


class BrokenDetector:
    """A landmark backend that fails on the fifth frame (a stage's error, not a model's output)."""

    name = "broken"

    def __init__(self) -> None:
        self.real, self.calls = get_detector("dlib"), 0

    def detect(self, image: np.ndarray) -> list:
        self.calls += 1
        if self.calls == 5:
            raise RuntimeError("landmarks failed")
        return self.real.detect(image)


@pytest.mark.parametrize("stage", ["landmarks", "generate", "encode"])
def test_an_error_in_any_stage_of_the_pipeline_is_raised_and_stops_every_thread(
        avatar: Avatar, driver_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    detector = BrokenDetector() if stage == "landmarks" else get_detector("dlib")
    calls = [0]

    def fail_on_second(real):
        def failing(*args, **kwargs):
            calls[0] += 1
            if calls[0] == 2:
                raise RuntimeError(f"{stage} failed")
            return real(*args, **kwargs)
        return failing

    if stage == "generate":
        monkeypatch.setattr(render, "render_faces", fail_on_second(render.render_faces))
    if stage == "encode":
        monkeypatch.setattr(VideoSink, "write", fail_on_second(VideoSink.write))
    out = tmp_path / "out.mp4"
    config = RenderConfig(output_size=64, batch_size=2, track=TrackConfig(enabled=False))  # every frame detected
    with pytest.raises(RuntimeError, match=f"{stage} failed"):
        render.render_driven_video([avatar], driver_video, out, detector, config)
    assert not [t for t in threading.enumerate() if t.name in ("decode+landmarks", "retarget+warp+generate")]
    assert not list(tmp_path.iterdir())  # neither the mp4 nor its partial file


def held_out_error(model: TalkingHeadModel, identity: int, k: int, steps: int) -> float:
    """Mean L1 on frames 14-19 of a clip after personalising on K of its frames 0-7, rendered as the
    product renders (G painting inside the mouth only)."""
    frames, landmarks = render_video(identity, 0, 20, 48)
    x, y = to_network(frames, landmarks, model.config.image_size)
    points = torch.from_numpy(landmarks * (model.config.image_size / 48)).float()
    shots, targets = list(range(0, 8, 8 // k))[:k], slice(14, 20)
    config = FinetuneConfig(steps=steps, device="cpu")
    warped = warp_from_bank(x[shots], points[shots], points[targets], model.config.image_size)
    region = paint_region(points[targets], model.config.image_size)
    avatar = personalize(model, x[shots], y[shots], points[shots], config)
    return (avatar.generate(y[targets], warped, region) - x[targets]).abs().mean().item()


@pytest.mark.slow
def test_more_shots_reduce_held_out_error_and_fine_tuning_stays_near_feed_forward(
        trained_tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = TalkingHeadModel.from_pretrained(trained_tiny)
    identities = (101, 102, 103)  # never in the training set (identities 0-7)
    error = {(k, s): np.mean([held_out_error(model, i, k, s) for i in identities]) for k, s in
             [(8, 0), (1, 30), (8, 30)]}
    with capsys.disabled():
        print("\nheld-out L1 (tiny):", {f"K={k} steps={s}": round(v, 4) for (k, s), v in error.items()})
    assert error[(8, 30)] < 0.9 * error[(1, 30)]  # the bank's 8 shots hold poses and mouths one shot lacks
    # G paints only inside the mouth, so fine-tuning can move little: it must not wreck what it touches
    # (measured 0.0970 vs 0.0968 feed-forward; the default is feed-forward, FinetuneConfig.steps).
    assert abs(error[(8, 30)] - error[(8, 0)]) < 0.05 * error[(8, 0)]


def test_avatar_round_trip_in_a_fresh_process_gives_identical_frames(avatar: Avatar, tmp_path: Path) -> None:
    path = avatar.save(tmp_path / "person.avatar.safetensors")
    # The texture bank travels with the avatar: the faces (warp + G's painting) at 96 px must be identical.
    here = render_faces(avatar, avatar.source_landmarks[None] + np.float32(1.5), 96)
    # Same thread count as this process: float sums may be split differently across threads.
    code = (f"import sys, numpy, torch; torch.set_num_threads({torch.get_num_threads()}); "
            "from talking_head.avatar import Avatar; from talking_head.face_render import render_faces; "
            "a = Avatar.load(sys.argv[1]); "
            "sys.stdout.buffer.write(render_faces(a, a.source_landmarks[None] + numpy.float32(1.5), 96).tobytes())")
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True)
    assert np.array_equal(np.frombuffer(child.stdout, dtype=np.uint8).reshape(here.shape), here)
    loaded = Avatar.load(path)
    assert loaded.bank_crops.shape == (3, 640, 640, 3) and np.array_equal(loaded.bank_crops, avatar.bank_crops)
    assert np.array_equal(loaded.source_crop, avatar.source_crop) and loaded.photo_box == avatar.photo_box
    assert loaded.info == json.loads(json.dumps(avatar.info))


def test_bad_inputs_are_clear_errors(pipe: TalkingHeadPipeline, avatar: Avatar, driver_video: Path,
                                     tmp_path: Path) -> None:
    from skimage.data import coffee

    with pytest.raises(NoFaceError, match="no face found"):
        pipe.personalize([coffee()], steps=0)
    with pytest.raises(InputError, match="at least one photo"):
        pipe.personalize([], steps=0)
    with pytest.raises(InputError, match="limit is 0.5 s"):
        pipe.animate(avatar, driver_video, tmp_path / "long.mp4", RenderConfig(max_seconds=0.5))
    trimmed = pipe.animate(avatar, driver_video, tmp_path / "trim.mp4", RenderConfig(max_seconds=0.5, trim=True,
                                                                                      output_size=64))
    assert trimmed.num_frames == 12
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(driver_video.read_bytes()[:2000])
    with pytest.raises(InputError, match="broken.mp4"):
        pipe.animate(avatar, broken, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "long.mp4").exists()


def test_a_driver_is_checked_as_it_will_be_rendered_before_any_model_work(pipe: TalkingHeadPipeline,
                                                                          driver_video: Path) -> None:
    assert pipe.check_driver(driver_video).frames == 30
    assert pipe.check_driver(driver_video, RenderConfig(max_seconds=0.5, trim=True)).frames == 12
    with pytest.raises(InputError, match=r"1\.2 s long; the limit is 0\.5 s"):
        pipe.check_driver(driver_video, RenderConfig(max_seconds=0.5))
    with pytest.raises(InputError, match="at most 1024 px"):
        pipe.check_driver(driver_video, RenderConfig(output_size=2048))
    with pytest.raises(InputError, match="at least one photo"):
        pipe.check_photos([])
    pipe.check_photos(["never opened.jpg"] * pipe.limits.max_shots)
    with pytest.raises(InputError, match=f"at most {pipe.limits.max_shots} can be used"):
        pipe.check_photos(["never opened.jpg"] * (pipe.limits.max_shots + 1))


def test_landmark_overlays_draw_each_shots_landmarks_over_its_crop(pipe: TalkingHeadPipeline,
                                                                   synthetic_photos: list[Path]) -> None:
    shots = pipe.prepare_shots(synthetic_photos)
    overlays = pipe.landmark_overlays(shots, 96)
    assert [overlay.shape for overlay in overlays] == [(96, 96, 3)] * len(synthetic_photos)
    for overlay, landmarks in zip(overlays, shots.landmarks):
        drawing = draw_landmarks(landmarks * (96 / shots.crops.shape[1]), 96)
        drawn = drawing.any(axis=-1)
        assert np.array_equal(overlay[drawn], drawing[drawn]) and 0.02 < drawn.mean() < 0.3
    own = pipe.landmark_overlays(shots)[0]
    assert own.shape == shots.crops[0].shape and not np.array_equal(own, shots.crops[0])


def test_the_comparison_table_puts_each_metric_in_its_column() -> None:
    rows = [{"K": 1, "steps": 0, "seconds": 1.25, "SSIM": 0.5, "PSNR": 20.125, "CSIM": 0.75,
             "measured on": "2 unseen photos"},
            {"K": 3, "steps": 0, "seconds": 2.0, "SSIM": 0.9, "PSNR": 30.0, "CSIM": -0.25,
             "measured on": "its own shots"}]
    lines = pipeline_module.comparison_table(rows, ["only 3 photos given: K capped at 3",
                                                    "[me](https://x.test/a).jpg: small face"]).splitlines()
    assert lines[0] == "| K | fine-tuning steps | seconds | SSIM ↑ | PSNR ↑ | CSIM ↑ | measured on |"
    assert lines[2:4] == ["| 1 | 0 | 1.2 | 0.500 | 20.12 | 0.750 | 2 unseen photos |",
                          "| 3 | 0 | 2.0 | 0.900 | 30.00 | -0.250 | its own shots |"]
    # Notes are plain text: a note names the visitor's photo, whose name must not become a link.
    assert lines[-3] == r"_only 3 photos given\: K capped at 3_"
    assert lines[-1] == r"_\[me\]\(https\://x\.test/a\)\.jpg\: small face_"


def test_an_avatar_with_a_malformed_texture_bank_is_refused_with_a_message(avatar: Avatar, tmp_path: Path) -> None:
    for bank in (avatar.bank_crops[:, :100], avatar.bank_crops[..., :2]):
        path = replace(avatar, bank_crops=bank).save(tmp_path / "bad.avatar.safetensors")
        with pytest.raises(InputError, match="malformed texture bank"):
            Avatar.load(path)
    wrong_points = replace(avatar, bank_landmarks=avatar.bank_landmarks[:1]).save(tmp_path / "bad.avatar.safetensors")
    with pytest.raises(InputError, match="malformed texture bank"):
        Avatar.load(wrong_points)


def untrained_tiny(folder: Path) -> Path:
    torch.manual_seed(0)
    TalkingHeadModel(ModelConfig.named("tiny")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def quick_pipe(tmp_path_factory: pytest.TempPathFactory) -> TalkingHeadPipeline:
    """An untrained tiny model: for what the pipeline does with options, not for what its frames look like."""
    weights = untrained_tiny(tmp_path_factory.mktemp("untrained"))
    return TalkingHeadPipeline.from_pretrained(weights, device="cpu", landmark_backend="dlib")


def test_the_finetune_config_is_followed_and_stored_in_the_avatar(quick_pipe: TalkingHeadPipeline,
                                                                  synthetic_photos: list[Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    steps_seen: list[int] = []
    given = FinetuneConfig(steps=3, seed=7, lr_generator=1e-4)
    avatar = quick_pipe.personalize(synthetic_photos[:1], finetune=given,
                                    progress=lambda _, text: steps_seen.append(text))
    assert len(steps_seen) == avatar.info["steps"] == 3  # not the default 40
    with safe_open(str(avatar.save(tmp_path / "a.avatar.safetensors")), framework="pt") as file:
        stored = json.loads(file.metadata()["info"])["finetune"]
    assert FinetuneConfig(**stored) == replace(given, device="cpu")  # "auto": the pipeline's device
    assert quick_pipe.personalize(synthetic_photos[:1], 1, finetune=given).info["finetune"]["steps"] == 1

    used: list[FinetuneConfig] = []

    def on_cpu_after_all(model, frames, drawings, points, config, progress):  # this machine may have no GPU
        used.append(config)
        return personalize(model, frames, drawings, points, replace(config, device="cpu"), progress)

    monkeypatch.setattr(pipeline_module, "personalize", on_cpu_after_all)
    quick_pipe.personalize(synthetic_photos[:1], finetune=FinetuneConfig(steps=0, device="cuda:1"))
    assert used[0].device == "cuda:1"  # a device the config names wins over the pipeline's


def test_animate_leaves_the_callers_avatar_on_its_device(quick_pipe: TalkingHeadPipeline, synthetic_photos: list[Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    avatar = quick_pipe.personalize(synthetic_photos[:1], steps=0)
    rendered: list[Avatar] = []
    monkeypatch.setattr(pipeline_module, "render_driven_video", lambda avatars, *_, **__: rendered.extend(avatars))
    monkeypatch.setattr(quick_pipe, "device", torch.device("meta"))  # another device, without a GPU
    quick_pipe.animate(avatar, "driver.mp4", "out.mp4")
    assert rendered[0].generator.psi.device.type == "meta"  # rendered on the pipeline's device ...
    assert avatar.generator.psi.device.type == "cpu"  # ... from a copy: the caller's avatar did not move


def test_weights_are_shown_by_origin_and_name_never_by_a_server_path(synthetic_photos: list[Path], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights string is in every note of the app and in every avatar file a visitor downloads."""
    weights = untrained_tiny(tmp_path / "my-weights")
    monkeypatch.setenv("TALKING_HEAD_CHECKPOINTS", str(weights))  # the implicit default falls back to it offline
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    repo = Path(__file__).resolve().parents[1]
    for source, label in ((weights, "local: my-weights"), (None, "bundled: tiny checkpoint")):
        pipe = TalkingHeadPipeline.from_pretrained(source, device="cpu", landmark_backend="dlib")
        avatar = pipe.personalize(synthetic_photos[:1], steps=0)
        shown = json.dumps(avatar.info)
        assert pipe.weights == avatar.info["weights"] == label
        assert str(tmp_path) not in shown and str(repo) not in shown
        assert not re.search(r"""(^|[\s"'`:=])/""", shown), shown  # nothing that starts like an absolute path


class _RefusingGenerator(face_render.BatchGenerator):
    """A batch generator that fails the test if it is ever called."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the generator ran although it was not asked for")


def test_the_default_shows_the_warp_and_runs_the_generator_only_when_asked(avatar: Avatar) -> None:
    """The generator is off by default (it lost to the warp on real faces): the frame is the warp itself, and
    ``generator=True`` runs it over the warp."""
    targets = np.repeat(avatar.source_landmarks[None], 2, axis=0)
    targets[1, 55:60, 1] += 3.0  # the lower lip drops
    warp = face_render.tensor_to_images(face_render.texture_for(avatar, targets, 64))
    shown = render_faces(avatar, targets, 64, _RefusingGenerator(avatar, 2))
    assert np.array_equal(shown, warp)
    with pytest.raises(AssertionError, match="not asked for"):
        render_faces(avatar, targets, 64, _RefusingGenerator(avatar, 2), generator=True)
    assert RenderConfig().generator is False and render_faces(avatar, targets, 64, generator=True).shape == warp.shape
