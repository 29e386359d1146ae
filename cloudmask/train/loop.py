"""`cloudmask train`: seeded, resumable training of the cloudmask U-Nets, then export.

Workdir layout (outside the repo; never committed): <workdir>/<model-name>/{last.keras, best.keras, state.json,
log.csv}, <workdir>/teacher_cache/*.npz. `--resume` continues from last.keras at the epoch in state.json.
The same command runs on a GPU: with TensorFlow when it sees one, or with Keras 3's JAX or PyTorch backend
(`KERAS_BACKEND=jax`) on a machine without TensorFlow, from a data bundle (`--write-bundle` here, `--bundle` there);
the checkpoints are backend-neutral .keras files, and export (TensorFlow SavedModel) runs where TensorFlow is:
`cloudmask train --workdir W --epochs N --resume --export models` trains no further and exports best.keras.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cloudmask.contract import CLOUDMASK_4B, CLOUDMASK_6B, ModelContract

VARIANTS = {"6b": CLOUDMASK_6B, "4b": CLOUDMASK_4B}
VARIANTS_BY_NAME = {c.name: c for c in VARIANTS.values()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", choices=["6b", "4b", "both"], default="both")
    p.add_argument("--workdir", type=Path, default=Path("runs"), help="checkpoints, logs, teacher cache (not committed)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--val-batches", type=int, default=6, help="held-out synthetic batches for model selection")
    p.add_argument("--chip", type=int, default=256, help="training chip size (multiple of 16)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--widths", default=None,
                   help="U-Net filters at 1/2,1/4,1/8,1/16 resolution, e.g. 16,48,96,160 (default: unet.DEFAULT_WIDTHS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="TF intra-op threads on CPU (inter-op is 1)")
    p.add_argument("--resume", action="store_true", help="continue from <workdir>/<model>/last.keras")
    p.add_argument("--init-from", type=Path, default=None,
                   help="fine-tune: start from the weights of <DIR>/<model>/best.keras, or of an exported SavedModel "
                        "version folder (e.g. models/cloudmask-6b/6) (a fresh optimizer and LR schedule); ignored "
                        "when --resume finds a checkpoint")
    p.add_argument("--init-model", default=None, choices=sorted(VARIANTS_BY_NAME),
                   help="with --init-from: take <DIR>/<INIT_MODEL>/best.keras instead of this variant's own, e.g. "
                        "cloudmask-4b for the 6-band net (input channels matched by band name, new bands start at 0)")
    p.add_argument("--export", type=Path, default=None, help="export root, e.g. models/ -> models/<name>/<version>/")
    p.add_argument("--version", default="1")
    p.add_argument("--teacher-min-conf", type=float, default=0.9)
    p.add_argument("--p-real", type=float, default=None,
                   help="share of training crops from real cloudy acquisitions (default data.P_TEACHER)")
    p.add_argument("--no-teacher", action="store_true", help="train on synthetic data only")
    p.add_argument("--shared", type=Path, default=None, help="shared data root (default $CLOUDMASK_SHARED or ../shared)")
    p.add_argument("--card-notes", type=Path, default=None,
                   help="Markdown file whose text goes into the model card (e.g. what changed from the last version)")
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds per variant after which training stops at the end of an epoch (0: no limit)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes making training batches (1: in the training process); batches do not depend on it")
    p.add_argument("--bundle", type=Path, default=None,
                   help="train from a data bundle written by --write-bundle instead of the shared folder")
    p.add_argument("--write-bundle", type=Path, default=None,
                   help="pack the training scenes and teacher labels into FILE (.npz) and exit")


def _setup_backend(seed: int, threads: int):
    """(tf or None, keras): TensorFlow only when it is Keras' backend (a GPU box may have JAX or PyTorch only)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    tf = None
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised (e.g. in tests): keep what is set
            pass
    keras.utils.set_random_seed(seed)
    return tf, keras


def _device(tf, keras, threads: int) -> str:
    backend = keras.backend.backend()
    if tf is not None:
        gpus = tf.config.list_physical_devices("GPU")
        return f"GPU {gpus[0].name}, tensorflow" if gpus else f"CPU, {threads} TF threads"
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform.upper()} {getattr(d, 'device_kind', '')}, jax {jax.__version__}".strip()
    if backend == "torch":
        import torch

        return (f"GPU {torch.cuda.get_device_name(0)}, torch" if torch.cuda.is_available() else "CPU, torch")
    return backend


def _git_commit() -> str | None:
    """HEAD of the repo, with "+dirty" when the training code differs from it (the card must not overclaim)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=root).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cloudmask/train"], capture_output=True,
                               text=True, check=True, cwd=root).stdout.strip()
        return (head + ("+dirty" if dirty else "")) or None
    except Exception:
        return None


_POOL_SAMPLER = None


def _pool_init(sampler) -> None:
    global _POOL_SAMPLER
    _POOL_SAMPLER = sampler


def _pool_batch(seed: int, name: str, epoch: int, idx: int, batch: int):
    from cloudmask.train.data import batch_rng

    return _POOL_SAMPLER.batch(batch_rng(seed, name, "train", epoch, idx), batch)


def make_batches(sampler, seed: int, name: str, steps: int, batch: int, workers: int = 1):
    """A keras PyDataset of (x, y, w) batches that depend only on (seed, model name, epoch, index).

    With workers > 1 a process pool (spawned: the training process may hold a GPU runtime) computes the next
    batches ahead; each is still the same pure function of its keys, so results do not depend on `workers`.
    """
    import multiprocessing as mp

    import keras

    from cloudmask.train.data import batch_rng

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0  # set by the training callback at each epoch start
            self.pool = None
            self.pending = {}
            if workers > 1:
                self.pool = mp.get_context("spawn").Pool(workers, initializer=_pool_init, initargs=(sampler,))
            self.ahead = 3 * workers

        def __len__(self):
            return steps

        def _submit(self, epoch, idx):
            if idx < steps and (epoch, idx) not in self.pending:
                self.pending[(epoch, idx)] = self.pool.apply_async(_pool_batch, (seed, name, epoch, idx, batch))

        def __getitem__(self, idx):
            if self.pool is None:
                return sampler.batch(batch_rng(seed, name, "train", self.epoch, idx), batch)
            for k in range(idx, idx + self.ahead):
                self._submit(self.epoch, k)
            return self.pending.pop((self.epoch, idx)).get()

        def close(self):
            if self.pool is not None:
                self.pool.terminate()
                self.pool = None

    return Batches()


def build_sampler(contract: ModelContract, args, clear, cloudy, labels, real_val=()):
    from cloudmask.train.data import Sampler

    p_real = getattr(args, "p_real", None)
    return Sampler(contract.bands, clear, cloudy, labels, chip=args.chip, real_val=real_val,
                   **({} if p_real is None else {"p_real": p_real}))


def held_out_sites(real_val) -> list[str]:
    """The held-out sites (realclouds.HOLDOUT_SITES) whose acquisitions are in `real_val` [(scene, label)]."""
    from cloudmask.train.realclouds import HOLDOUT_SITES

    return sorted(site for site in HOLDOUT_SITES if any(s.name.startswith(site + "_") for s, _ in real_val))


def parse_widths(text: str | None) -> tuple[int, ...]:
    from cloudmask.train.unet import DEFAULT_WIDTHS

    if not text:
        return DEFAULT_WIDTHS
    try:
        w = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise SystemExit(f"--widths: four comma-separated integers, got {text!r}") from None
    if len(w) != 4 or min(w) < 1:
        raise SystemExit(f"--widths: four positive integers (filters at 1/2, 1/4, 1/8, 1/16), got {text!r}")
    return w


def teacher_text(real_summary: dict | None, min_conf: float) -> str:
    """The card's teacher line, from the sources that actually voted (realclouds.summary) and the pseudo-label rule."""
    import importlib.metadata as md

    from cloudmask.train import realclouds

    voters = sorted({v for s in (real_summary or {}).values() for v in s.get("votes", {})})
    try:
        ukis = f"ukis-csmask {md.version('ukis-csmask')}"
    except md.PackageNotFoundError:
        ukis = "ukis-csmask"
    built = (f"labels built from independent sources where they agree (cloudmask.train.realclouds, weighted votes >= "
             f"{realclouds.MIN_SCORE:g}{', cloud rims kept' if realclouds.CLOUD_EDGES else ''}; voters: "
             f"{', '.join(voters)}) on real acquisitions; " if voters else "")
    return built + (f"{ukis} confident (p >= {min_conf:g}) labels, its model for the scene's bands and level, on the "
                    "other real cloudy scenes")


def architecture(model) -> str:
    """The card's architecture line, read from the model itself (so it cannot drift from what was trained)."""
    from cloudmask.train.unet import widths_of

    return ("U-Net, stride-2 stem, depthwise-separable convs, widths " + "/".join(map(str, widths_of(model)))
            + ", 4 downsamplings")


def compile_model(model, lr: float, total_steps: int):
    import keras

    # XLA on CPU made TensorFlow steps ~7x slower for this net; JAX always compiles (False would mean eager).
    jit = keras.backend.backend() != "tensorflow"

    sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.05,
                                                   warmup_target=None)
    model.compile(
        optimizer=keras.optimizers.Adam(sched),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.IoU(3, [1], sparse_y_pred=False, name="cloud_iou"),
                 keras.metrics.IoU(3, [2], sparse_y_pred=False, name="shadow_iou")],
        jit_compile=jit,
    )
    return model


def train_variant(contract: ModelContract, args, clear, cloudy, labels, command: str, real_val=(),
                  real_summary=None) -> dict:
    tf, keras = _setup_backend(args.seed, args.threads)
    if args.export and tf is None:
        raise SystemExit("export writes a TensorFlow SavedModel: train with --workdir here, then run the same "
                         "command with --resume --export on a machine with TensorFlow")
    from cloudmask.train import data
    from cloudmask.train.data import batch_rng
    from cloudmask.contract import read_contract
    from cloudmask.train.unet import build_unet, check_shape, load_savedmodel_weights, transfer_weights

    check_shape(args.chip, args.chip)
    widths = parse_widths(getattr(args, "widths", None))
    wd = Path(args.workdir) / contract.name
    wd.mkdir(parents=True, exist_ok=True)
    last, best, state_path = wd / "last.keras", wd / "best.keras", wd / "state.json"
    sampler = build_sampler(contract, args, clear, cloudy, labels, real_val)

    # Held-out validation set, fixed, generated once: synthetic clouds on the held-out clear regions, and as many
    # batches again from the held-out real acquisitions (a whole site nobody trains on) when there are any.
    vr = batch_rng(args.seed, contract.name, "val")
    splits = ["val"] * args.val_batches + (["val_real"] * args.val_batches if sampler.real_val else [])
    vx, vy, vw = zip(*(sampler.batch(vr, args.batch, split=sp) for sp in splits))
    val = (np.concatenate(vx), np.concatenate(vy), np.concatenate(vw))

    state = {"epoch": 0, "best_val_loss": None, "best_epoch": None, "wall_time_s": 0.0}
    if args.resume and last.exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        model = keras.models.load_model(last)
        print(f"[{contract.name}] resuming at epoch {state['epoch']} from {last}", flush=True)
    elif args.init_from:
        src = VARIANTS_BY_NAME[args.init_model or contract.name]
        exported = (Path(args.init_from) / "saved_model.pb").exists()
        init = Path(args.init_from) if exported else Path(args.init_from) / src.name / "best.keras"
        if exported:  # a served version: its contract says which bands it reads
            src = VARIANTS_BY_NAME[read_contract(init)[0].name]
        # Weights only: the old optimizer state and its decayed schedule would make fine-tuning a no-op.
        model = build_unet(contract.n_bands, widths, name=contract.name.replace("-", "_"))
        load = (lambda m: load_savedmodel_weights(m, init)) if exported else (lambda m: m.load_weights(init))
        if src.bands == contract.bands:
            load(model)
        else:
            donor = build_unet(src.n_bands, widths, name=src.name.replace("-", "_"))
            load(donor)
            transfer_weights(donor, src.bands, model, contract.bands)
        model = compile_model(model, args.lr, args.epochs * args.steps_per_epoch)
        state["init_from"] = str(init)
        print(f"[{contract.name}] fine-tuning from {init}", flush=True)
    else:
        model = compile_model(build_unet(contract.n_bands, widths, name=contract.name.replace("-", "_")), args.lr,
                              args.epochs * args.steps_per_epoch)
    ds = make_batches(sampler, args.seed, contract.name, args.steps_per_epoch, args.batch,
                      getattr(args, "workers", 1))
    t_start = time.time()
    wall0 = float(state.get("wall_time_s", 0.0))

    # Keras writes the checkpoints (best by held-out loss, continuing from the best a resumed run recorded; last
    # every epoch); Track runs after them, so state.json never names an epoch whose checkpoint is not on disk.
    checkpoints = [
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", mode="min", save_best_only=True,
                                        initial_value_threshold=state["best_val_loss"]),
        keras.callbacks.ModelCheckpoint(str(last)),
    ]

    class Track(keras.callbacks.Callback):
        """Epoch for the batch pool, the run's state (best epoch, wall time, commands) and the time budget."""

        def on_epoch_begin(self, epoch, logs=None):
            ds.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            vl = float(logs.get("val_loss", np.inf))
            if state["best_val_loss"] is None or vl < state["best_val_loss"]:  # ModelCheckpoint's own test
                state["best_val_loss"], state["best_epoch"] = vl, epoch + 1
            state["epoch"] = epoch + 1
            state["wall_time_s"] = wall0 + time.time() - t_start
            state_path.write_text(json.dumps(state, indent=2))
            if args.time_budget and state["wall_time_s"] > args.time_budget:
                print(f"[{contract.name}] time budget reached after epoch {epoch + 1}", flush=True)
                self.model.stop_training = True

    if state["epoch"] < args.epochs and not (args.time_budget and state["wall_time_s"] > args.time_budget):
        # Every command that trained this checkpoint, in order (a resumed run lists the first one too).
        state["commands"] = [*state.get("commands", []), command]
        state["devices"] = [*state.get("devices", []), _device(tf, keras, args.threads) + f", {platform.node()}"]
        try:
            # shuffle=False: every batch is already random, and the pool computes them in index order.
            model.fit(ds, epochs=args.epochs, initial_epoch=state["epoch"], validation_data=val, shuffle=False,
                      callbacks=[*checkpoints, Track(), keras.callbacks.CSVLogger(str(wd / "log.csv"), append=True)],
                      verbose=1 if sys.stdout.isatty() else 2)
        finally:
            ds.close()
    result = {"model": contract.name, "workdir": str(wd), **state}
    if args.export:
        from cloudmask.train.export import export_model

        chosen = keras.models.load_model(best) if best.exists() else model
        prov = {
            "command": command, "commands": state.get("commands", [command]), "seed": args.seed, "epochs_run": state["epoch"], "epochs_requested": args.epochs,
            "steps_per_epoch": args.steps_per_epoch, "batch": args.batch, "chip": args.chip, "lr": args.lr,
            "best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
            "selection": f"lowest loss on a held-out split: synthetic clouds on the bottom {data.VAL_FRACTION:.0%} rows "
                         f"of clear scenes of at least {data.VAL_MIN_ROWS} rows + the BigEarthNet patch {data.VAL_PATCH}"
                         + (", and real acquisitions of held-out sites "
                         f"({', '.join(held_out_sites(real_val))}) with built labels"
                         if real_val else "") + "; ../shared/data/labelled never used",
            "real_clouds": real_summary,
            "wall_time_s": round(state["wall_time_s"], 1),
            "device": "; ".join(state.get("devices") or [_device(tf, keras, args.threads) + f", {platform.node()}"]),
            "architecture": architecture(chosen),
            "teacher": None if args.no_teacher else teacher_text(real_summary, args.teacher_min_conf),
            "teacher_min_conf": args.teacher_min_conf, "p_real": getattr(args, "p_real", None), "init_from": state.get("init_from"),
            "recipe_notes": Path(args.card_notes).read_text().strip() if getattr(args, "card_notes", None) else None, "tensorflow": tf.__version__, "keras": keras.__version__,
            "git_commit": _git_commit(),
        }
        result["exported"] = str(export_model(chosen, contract, args.export, args.version, prov))
        print(f"[{contract.name}] exported to {result['exported']}", flush=True)
    return result


def run(args: argparse.Namespace) -> int:
    from cloudmask.train import sources
    from cloudmask.train.teacher import pseudo_labels

    if args.shared:
        os.environ["CLOUDMASK_SHARED"] = str(args.shared)
    command = "cloudmask train " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    real_val, real_summary = [], None
    if args.bundle:
        from cloudmask.train.bundle import read_bundle

        clear, cloudy, labels, _ = read_bundle(args.bundle)
        if args.no_teacher:
            cloudy, labels = [], []
    else:
        clear = sources.load_clear()
        cloudy, labels = [], []
        if not args.no_teacher:
            from cloudmask.train import realclouds

            # ukis-csmask labels for the 4-band On Cloud N chips; the DEA stack now comes with built labels
            cloudy = [s for s in sources.load_cloudy() if s.source != "dea_wright_stack"]
            labels = pseudo_labels(cloudy, Path(args.workdir) / "teacher_cache", min_conf=args.teacher_min_conf)
            real = realclouds.load_all(cache=Path(args.workdir) / "label_cache", threads=args.threads)
            real_summary = realclouds.summary(real)
            cloudy += [r.scene for r in real if not r.held_out]
            labels += [r.label for r in real if not r.held_out]
            real_val = [(r.scene, r.label) for r in real if r.held_out]
    if not clear:
        print(f"no clear scenes under {sources.shared_root()}/data/clear", file=sys.stderr)
        return 2
    if args.write_bundle:
        from cloudmask.train.bundle import write_bundle

        info = {"teacher_min_conf": args.teacher_min_conf, "teacher": not args.no_teacher, "command": command}
        path = write_bundle(args.write_bundle, clear, cloudy, labels, info)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(clear)} clear, {len(cloudy)} cloudy scenes")
        return 0
    print(f"clear scenes: {[s.name for s in clear]}\nteacher scenes: {len(cloudy)}", flush=True)
    variants = ["6b", "4b"] if args.variant == "both" else [args.variant]
    results = [train_variant(VARIANTS[v], args, clear, cloudy, labels, command, real_val, real_summary)
               for v in variants]
    print(json.dumps(results, indent=2, default=str))
    return 0
