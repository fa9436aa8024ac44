"""Meta-learning (the paper's stage 1): E, G and D trained on episodes of K shots + 1 target.

Every run lives in one folder, reproducible from it alone::

    out/training_options.json      the TrainOptions in force (options.jsonl: every (re)start and its step)
    out/log.jsonl                  one line per logged step: every loss, held-out L1, seconds
    out/samples/step_000200.png    shot | target landmarks | generated | real, for held-out frames
    out/checkpoint/                the model (safetensors, loadable with from_pretrained) +
                                   training_state.safetensors (optimisers, step): resumable

Runs on CPU, one GPU (bf16 autocast), or several with ``torchrun`` (gradients averaged across ranks
with ``torch.distributed``; gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from PIL import Image
from safetensors.torch import load_file, save_file

from talking_head.config import MODEL_SIZES, ModelConfig
from talking_head.data.episodes import Episode, EpisodeSampler
from talking_head.device import pick_device
from talking_head.losses import ContentLoss, GanPhases, LossWeights, embedding_match, make_optimizers
from talking_head.models.talking_head_model import TalkingHeadModel
from talking_head.options import option, required
from talking_head.shot_bank import episode_textures, paint_region
from talking_head.tensors import tensor_to_images

logger = logging.getLogger(__name__)
STATE_FILE = "training_state.safetensors"


@dataclass
class TrainOptions:
    data: str = required("dataset folder (made by `synthesize` or `preprocess`)")
    out: str = option("runs/small", "run folder: options, logs, samples, checkpoint")
    size: str = option("small", "model size", choices=["tiny", "small", "paper"])
    pure_synthesis: bool = option(False, "the paper's G, which synthesizes every pixel (no texture path; the "
                                  "`paper` size has none anyway)")
    init: str | None = option(None, "start from this checkpoint folder instead of random weights")
    k_shots: int = option(8, "K: shots per episode")
    batch_size: int = option(4, "episodes per step (per process)")
    steps: int = option(10000, "total generator steps")
    lr_generator: float = option(5e-5, "Adam learning rate of E, G and W's embedding match (paper: 5e-5)")
    lr_discriminator: float = option(2e-4, "Adam learning rate of D (paper: 2e-4)")
    discriminator_steps: int = option(2, "D updates per G update (paper: 2)")
    loss: LossWeights = field(default_factory=LossWeights, metadata={"help": "loss weights"})
    vgg19: str | None = option(None, "VGG19 weights (safetensors, torchvision names) for the content loss")
    vggface: str | None = option(None, "VGGFace weights (safetensors) for the content loss")
    holdout_frames: int = option(4, "last frames of every video kept out of training, for held-out L1")
    eval_every: int = option(100, "steps between held-out evaluations")
    eval_videos: int = option(8, "videos in the held-out evaluation")
    save_every: int = option(200, "steps between checkpoints (and sample grids)")
    log_every: int = option(10, "steps between log lines")
    max_minutes: float = option(0.0, "stop (after saving) once this much wall time has passed; 0 = no limit")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    amp: bool = option(True, "bf16 autocast where talking_head.device says it pays (CUDA; CPUs with AMX or "
                             "avx512_bf16)")
    threads: int = option(0, "torch CPU threads (0 = torch's default)")
    seed: int = option(0, "seed of the weights and of episode sampling")

    def __post_init__(self) -> None:
        """Refuse options no run can use now, not steps or hours into the run (``discriminator_steps=0``
        once surfaced as a NameError after the first generator step)."""
        at_least = {"k_shots": 1, "batch_size": 1, "steps": 0, "discriminator_steps": 1, "holdout_frames": 0,
                    "eval_every": 1, "eval_videos": 1, "save_every": 1, "log_every": 1, "threads": 0}
        wrong = [f"{name} must be >= {low}, got {getattr(self, name)}" for name, low in at_least.items()
                 if getattr(self, name) < low]
        wrong += [f"{name} must be > 0, got {getattr(self, name)}" for name in ("lr_generator", "lr_discriminator")
                  if not getattr(self, name) > 0]
        if self.max_minutes < 0:
            wrong.append(f"max_minutes must be >= 0 (0: no limit), got {self.max_minutes}")
        if self.size not in MODEL_SIZES:
            wrong.append(f"size must be one of {sorted(MODEL_SIZES)}, got {self.size!r}")
        if wrong:
            raise ValueError("invalid training options: " + "; ".join(wrong))


# ---------------------------------------------------------------------------------------------------
# Resumable state: optimisers as safetensors (no pickles anywhere)
# ---------------------------------------------------------------------------------------------------

def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], str]:
    state = optimizer.state_dict()
    tensors = {f"{prefix}.{pid}.{key}": torch.as_tensor(value).clone()
               for pid, entry in state["state"].items() for key, value in entry.items()}
    return tensors, json.dumps(state["param_groups"])


def load_optimizer(
    optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], groups: str
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        head, pid, key = name.split(".", 2)
        if head == prefix:
            state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(groups)})


def save_checkpoint(
    out: Path, model: TalkingHeadModel, optimizers: dict[str, torch.optim.Optimizer], step: int
) -> None:
    """Write ``out/checkpoint`` atomically: a crash mid-save leaves the previous checkpoint intact (as
    ``checkpoint.old`` between the two renames, where :func:`resumable_checkpoint` finds it)."""
    tmp, final, old = out / "checkpoint.partial", out / "checkpoint", out / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tensors, metadata = {}, {"step": str(step)}
    for name, optimizer in optimizers.items():
        t, groups = optimizer_tensors(optimizer, name)
        tensors.update(t)
        metadata[f"{name}.param_groups"] = groups
    save_file(tensors, str(tmp / STATE_FILE), metadata=metadata)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def resumable_checkpoint(out: Path) -> Path | None:
    """The checkpoint a run in ``out`` continues from: ``checkpoint/``, or ``checkpoint.old`` when a crash
    between :func:`save_checkpoint`'s two renames left only that; None for a fresh run."""
    return next((folder for folder in (out / "checkpoint", out / "checkpoint.old")
                 if (folder / STATE_FILE).is_file()), None)


def load_checkpoint(folder: Path, optimizers: dict[str, torch.optim.Optimizer], model: TalkingHeadModel) -> int:
    """Restore model and optimisers from the checkpoint ``folder``; returns the step to continue from.

    Learning rates are those of the options the run is resumed with, not the saved ones, so a run can
    be continued with a new schedule (each restart is recorded in ``options.jsonl``).
    """
    saved = TalkingHeadModel.from_pretrained(folder)
    model.load_state_dict(saved.state_dict())
    tensors = load_file(str(folder / STATE_FILE))
    from safetensors import safe_open

    with safe_open(str(folder / STATE_FILE), framework="pt") as f:
        metadata = f.metadata()
    for name, optimizer in optimizers.items():
        wanted = [group["lr"] for group in optimizer.param_groups]
        load_optimizer(optimizer, name, tensors, metadata[f"{name}.param_groups"])
        for group, lr in zip(optimizer.param_groups, wanted):
            group["lr"] = lr
    return int(metadata["step"])


def grow_into(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, where a tensor of ``model`` is larger, into its leading slice.

    This is how a pure-synthesis checkpoint starts a texture-path model: G's first convolutions gain
    input channels for the warped shots (their weights, and the spectral norm's right singular vector,
    are zero-padded, so those channels start unheard), and the mask head it lacks keeps its
    initialisation (mask 1: the warp). Tensors missing from ``state`` keep their initialisation.
    """
    own = model.state_dict()
    for name, value in state.items():  # state_dict() tensors share the parameters' storage
        if name not in own:
            raise ValueError(f"{name}: not a tensor of this model")
        target = own[name]
        if value.dim() != target.dim() or any(a > b for a, b in zip(value.shape, target.shape)):
            raise ValueError(f"{name}: {tuple(value.shape)} does not fit into {tuple(target.shape)}")
        with torch.no_grad():
            if value.shape != target.shape:
                target.zero_()
            target[tuple(slice(0, n) for n in value.shape)] = value.to(target.dtype)


# ---------------------------------------------------------------------------------------------------
# Distributed helpers (no-ops in a single process)
# ---------------------------------------------------------------------------------------------------

def init_distributed(device: torch.device) -> tuple[torch.device, int, int]:
    """(device, rank, world size) of this process; under ``torchrun`` it joins the process group.

    On CUDA each process takes the GPU of its ``LOCAL_RANK`` (torchrun's index on this machine), whatever
    index ``device`` named: otherwise every rank would share cuda:0.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device, 0, 1
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), dist.get_world_size()


def average_gradients(parameters: list[torch.nn.Parameter], world: int) -> None:
    """All-reduce gradients across ranks.

    Done by hand rather than with DistributedDataParallel wrappers because each step runs G's and
    D's phases with the *other* network frozen, which DDP's one-forward-one-backward hooks don't fit.
    """
    if world == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def broadcast_parameters(model: torch.nn.Module, world: int) -> None:
    if world > 1:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


# ---------------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------------

def embed_episodes(model: TalkingHeadModel, episode: Episode) -> torch.Tensor:
    """e_i: the mean over each episode's K shots, (B, embedding_dim)."""
    b, k = episode.shot_frames.shape[:2]
    flat = model.embedder(episode.shot_frames.flatten(0, 1), episode.shot_landmarks.flatten(0, 1))
    return flat.view(b, k, -1).mean(dim=1)


def generate_targets(model: TalkingHeadModel, episode: Episode, embeddings: torch.Tensor) -> torch.Tensor:
    """G's rendering of each episode's target from its embedding (and, on the texture path, its shots)."""
    warped = region = None
    if model.config.texture_path:
        warped = episode_textures(episode.shot_frames, episode.shot_points, episode.target_points)
        region = paint_region(episode.target_points, warped.shape[-1])
    return model.generator(episode.target_landmarks, psi=model.generator.project(embeddings), warped=warped,
                           paint_region=region)


def training_step(model: TalkingHeadModel, phases: GanPhases, episode: Episode, options: TrainOptions
                  ) -> dict[str, float]:
    """One G step (E, G and W's embedding match) and ``options.discriminator_steps`` D steps on ``episode``."""
    columns = model.discriminator.W[:, episode.video_index].T

    def render() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embeddings = embed_episodes(model, episode)
        fake = generate_targets(model, episode, embeddings)
        # W_i follows e_i, not the other way round: with the paper's two-sided match (weight 80) the
        # embedder's final ReLU collapsed to all-zero embeddings within ~100 steps in our runs (the
        # small random W pulls every e_i to 0, where the ReLU stops all gradient).
        match = options.loss.embedding_match * embedding_match(columns, embeddings.detach().float())
        return fake, {"embedding_match": match}

    # G's adversarial terms see W_i through an explicit (detached) w: only the embedding-match term may
    # move W during G's step, or G's objective would teach D's W to call fakes real.
    terms, fake = phases.generator_step(render, episode.target_frames, episode.target_landmarks, w=columns.detach())
    for _ in range(options.discriminator_steps):
        d_terms = phases.discriminator_step(fake, episode.target_frames, episode.target_landmarks,
                                            video_index=episode.video_index)
    return {**{k: v.item() for k, v in terms.items()}, **{k: v.item() for k, v in d_terms.items()}}


@torch.no_grad()
def heldout_reconstruction(model: TalkingHeadModel, episode: Episode) -> tuple[float, torch.Tensor]:
    """Mean L1 (in [-1, 1] units) of generated vs real held-out frames, and the generated frames."""
    model.eval()
    fake = generate_targets(model, episode, embed_episodes(model, episode))
    model.train()
    return (fake - episode.target_frames).abs().mean().item(), fake


def save_sample_grid(path: Path, episode: Episode, fake: torch.Tensor) -> None:
    """Rows of: first shot | target landmarks | generated | real target."""
    columns = [episode.shot_frames[:, 0], episode.target_landmarks, fake, episode.target_frames]
    grid = torch.cat([torch.cat(list(c.cpu()), dim=1) for c in columns], dim=2)  # (3, B*H, 4*W)
    image = tensor_to_images(grid[None])[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------

def train(options: TrainOptions) -> Path:
    """Run (or resume) meta-learning; returns the run folder's checkpoint path."""
    device = pick_device(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    device, rank, world = init_distributed(device)
    out = Path(options.out)
    torch.manual_seed(options.seed)
    base = ModelConfig.named(options.size)
    sampler = EpisodeSampler(options.data, "train", options.k_shots, base.image_size, options.holdout_frames,
                             options.seed)
    config = ModelConfig.named(options.size, num_videos=sampler.num_videos,
                               texture_path=base.texture_path and not options.pure_synthesis)
    model = TalkingHeadModel(config, provenance={"options": asdict(options), "data": options.data,
                                                 "train_videos": sampler.num_videos})
    if options.init:
        init = TalkingHeadModel.from_pretrained(options.init)
        grow_into(model, {k: v for k, v in init.state_dict().items() if k != "discriminator.W"})
    model.to(device).train()
    content = ContentLoss(options.loss, options.vgg19, options.vggface).to(device)
    opt_g, opt_d = make_optimizers([*model.embedder.parameters(), *model.generator.parameters(), model.discriminator.W],
                                   model.discriminator.parameters(), options.lr_generator, options.lr_discriminator)
    optimizers = {"opt_g": opt_g, "opt_d": opt_d}
    phases = GanPhases(model.discriminator, content, opt_g, opt_d, device, options.amp,
                       functools.partial(average_gradients, world=world))

    start, resume = 0, resumable_checkpoint(out)
    if resume is not None:
        start = load_checkpoint(resume, optimizers, model)
        logger.info("resuming %s from step %d (%s)", out, start, resume.name)
    broadcast_parameters(model, world)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "training_options.json").write_text(json.dumps(asdict(options), indent=2))
        with (out / "options.jsonl").open("a") as f:
            f.write(json.dumps({"from_step": start, **asdict(options)}) + "\n")
        _truncate_log(out / "log.jsonl", start)
        logger.info("training %s (%d train videos) on %s, content loss: %s, world size %d",
                    options.size, sampler.num_videos, device, content.kind, world)
    heldout = sampler.heldout(options.eval_videos).to(device)
    began, step = time.monotonic(), start
    while step < options.steps:
        episode = sampler.sample(options.batch_size, step * world + rank).to(device)
        losses = training_step(model, phases, episode, options)
        step += 1
        out_of_time = _rank_zero_decides(bool(options.max_minutes) and time.monotonic() - began > options.max_minutes * 60, world,
                             device)
        if rank == 0:
            elapsed = time.monotonic() - began
            _report(out, model, heldout, optimizers, options, step, start, losses, elapsed, out_of_time)
        if out_of_time:
            break
    if world > 1:
        dist.destroy_process_group()
    return out / "checkpoint"


def _rank_zero_decides(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's decision, shared by all ranks (so none waits forever in an all-reduce); sent as a tensor on
    ``device``, the process group's (NCCL refuses CPU tensors)."""
    if world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def _report(out: Path, model: TalkingHeadModel, heldout: Episode, optimizers: dict[str, torch.optim.Optimizer],
            options: TrainOptions, step: int, start: int, losses: dict[str, float], seconds: float,
            final: bool) -> None:
    """Rank 0's bookkeeping after a step: log line, held-out L1, checkpoint and sample grid."""
    final = final or step == options.steps
    record: dict[str, float] = {"step": step, "seconds": round(seconds, 2), **losses}
    saving = step % options.save_every == 0 or final
    if step % options.eval_every == 0 or step == start + 1 or saving:
        record["heldout_l1"], fake = heldout_reconstruction(model, heldout)
    if step % options.log_every == 0 or "heldout_l1" in record:
        with (out / "log.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        logger.info("step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step"))
    if saving:
        save_checkpoint(out, model, optimizers, step)
        save_sample_grid(out / "samples" / f"step_{step:06d}.png", heldout, fake)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint we resume from, so the curve continues without duplicates."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
