"""Synthetic datasets in every benchmark layout, with exactly known flow, occlusions and validity.

    python -m flownet2.data.synthetic --out DIR --scenes 2 --pairs 2 --height 128 --width 192 --seed 0
    python -m flownet2.data.synthetic --layout kitti2015 --out DIR --pairs 3 --height 64 --width 200

Layouts (flownet2.data.datasets.TYPES): sintel (clean and final passes, occlusions), kitti2015 and
kitti2012 (16-bit PNG flow with KITTI's sparse validity: invalid above a horizon and at random
pixels, like a lidar's returns; flow_noc = valid and not occluded; kitti2015's obj_map marks the
moving ellipse), hd1k (KITTI PNG flow, sequences), middlebury (.flo with unknown values, 1e10, at
occluded pixels) and chairs (.ppm frames, .flo flow, a FlyingChairs_train_val.txt). KITTI and
Middlebury frames differ in size inside one set (a few pixels smaller per pair), as the real ones do.

Each scene is a textured background moved by a smooth flow (translation + small rotation/zoom + a
gentle wave) with a textured ellipse sliding over it. Frames are rendered from analytic textures
(sums of plane waves), so no resampling error accumulates over frames:

- The background of frame n shows the texture at canonical point C_n(y), where
  C_{n+1}(y) = C_n(y - g_n(y)) for a smooth backward motion g_n. The forward flow f_n of pixel x
  solves x + f = p with p - g_n(p) = x, i.e. the fixed point f = g_n(x + f) (g_n is a contraction),
  and then frame n+1 at x + f shows exactly what frame n shows at x.
- The ellipse moves by a constant s_n per step; its pixels have flow s_n.
- Occluded (Sintel's 255) = the pixel's target lies outside the image, or a background pixel whose
  target is covered by the ellipse in frame n+1.

The final pass is the clean pass blurred, hazed and with seeded noise (same flow, as in Sintel).
Deterministic for a given seed and size.
"""
import argparse
import functools
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..cli import parse, run_main
from ..errors import Flownet2Error
from ..fileio import atomic_write, save_png
from .flo import write_flo
from .kitti_png import write_kitti_flow

LAYOUTS = ("sintel", "kitti2015", "kitti2012", "hd1k", "middlebury", "chairs")
UNKNOWN = 1e10  # Middlebury's value for unknown flow

# A dataset is kept and re-read: PIL's default compression (6), not the one-off pictures' fast level.
_save_png = functools.partial(save_png, compress_level=6)

_WAVES = 24


def _texture(rng):
    """Parameters of an analytic colour texture: plane waves of wavelengths 6-64 px."""
    wavelength = np.exp(rng.uniform(np.log(6), np.log(64), _WAVES))
    theta = rng.uniform(0, 2 * np.pi, _WAVES)
    k = np.stack([np.cos(theta), np.sin(theta)], 1) * (2 * np.pi / wavelength)[:, None]
    return {"k": k, "phase": rng.uniform(0, 2 * np.pi, _WAVES),
            "colour": rng.uniform(-1, 1, (_WAVES, 3)) * 45 / np.sqrt(_WAVES / 4),
            "hard": rng.random(_WAVES) < 0.25, "base": rng.uniform(70, 180, 3)}


def _render(tex, x, y):
    """Texture colour at points (x, y) (float arrays of one shape), as float (..., 3) in [0, 255]."""
    out = np.empty((3,) + x.shape)
    out[...] = tex["base"].reshape((3,) + (1,) * x.ndim)
    for k, phase, colour, hard in zip(tex["k"], tex["phase"], tex["colour"], tex["hard"]):
        wave = np.sin(k[0] * x + k[1] * y + phase)
        if hard:  # a few near-square waves give the texture sharp edges
            wave = np.tanh(4 * wave)
        for c in range(3):
            out[c] += colour[c] * wave
    return np.clip(np.moveaxis(out, 0, -1), 0, 255)


def _motion(rng, height, width):
    """Parameters of one smooth backward background motion g (a few px, |grad g| well under 1)."""
    half_diag = np.hypot(height, width) / 2
    angle = rng.uniform(0, 2 * np.pi)
    wavelength = max(height, width) * rng.uniform(0.6, 1.0)
    return {
        "t": rng.uniform(1.5, 5.0) * np.array([np.cos(angle), np.sin(angle)]),
        "A": rng.uniform(-1, 1, (2, 2)) * 2.0 / half_diag,  # at most ~4 px at the corners
        "centre": np.array([(width - 1) / 2, (height - 1) / 2]),
        "amp": rng.uniform(0.5, 2.0, 2), "k": rng.uniform(-1, 1, 2) * 2 * np.pi / wavelength,
        "phase": rng.uniform(0, 2 * np.pi, 2),
    }


def _g(m, x, y):
    """The backward motion at points (x, y): (gx, gy)."""
    dx, dy = x - m["centre"][0], y - m["centre"][1]
    wave = m["k"][0] * x + m["k"][1] * y
    gx = m["t"][0] + m["A"][0, 0] * dx + m["A"][0, 1] * dy + m["amp"][0] * np.sin(wave + m["phase"][0])
    gy = m["t"][1] + m["A"][1, 0] * dx + m["A"][1, 1] * dy + m["amp"][1] * np.sin(wave + m["phase"][1])
    return gx, gy


def _forward_flow(m, x, y):
    """Solve f = g(x + f) by fixed-point iteration (converges: g varies slowly)."""
    fx, fy = _g(m, x, y)
    for _ in range(100):
        nx, ny = _g(m, x + fx, y + fy)
        change = max(np.abs(nx - fx).max(), np.abs(ny - fy).max())
        fx, fy = nx, ny
        if change < 1e-6:
            break
    return fx, fy


def _canonical(motions, x, y):
    """C_n at (x, y) for n = len(motions): undo the motions, newest first."""
    for m in reversed(motions):
        gx, gy = _g(m, x, y)
        x, y = x - gx, y - gy
    return x, y


def _inside(ellipse, offset, x, y):
    cx, cy, rx, ry = ellipse
    return ((x - cx - offset[0]) / rx) ** 2 + ((y - cy - offset[1]) / ry) ** 2 <= 1


def _draw_scene(rng, pairs, height, width):
    """The random parameters of one scene: textures, background motions, the ellipse and its steps."""
    background, foreground = _texture(rng), _texture(rng)
    motions = [_motion(rng, height, width) for _ in range(pairs)]
    ellipse = (width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6),
               width * rng.uniform(0.1, 0.2), height * rng.uniform(0.15, 0.3))
    angle = rng.uniform(0, 2 * np.pi)
    steps = [rng.uniform(5, 12) * np.array([np.cos(angle), np.sin(angle)]) + rng.normal(0, 1, 2)
             for _ in range(pairs)]
    offsets = np.cumsum([np.zeros(2)] + steps, axis=0)
    return {"background": background, "foreground": foreground, "motions": motions, "ellipse": ellipse,
            "steps": steps, "offsets": offsets}


def _scene(rng, pairs, height, width):
    """Frames (uint8 RGB), flows (H, W, 2), occlusion masks and the moving ellipse's pixels in each
    pair's first frame (bool) of one scene."""
    return _render_scene(_draw_scene(rng, pairs, height, width), height, width)


def _render_scene(scene, height, width):
    pairs = len(scene["motions"])
    motions, ellipse, steps, offsets = scene["motions"], scene["ellipse"], scene["steps"], scene["offsets"]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for n in range(pairs + 1):
        cx, cy = _canonical(motions[:n], x, y)
        inside = _inside(ellipse, offsets[n], x, y)
        img = _render(scene["background"], cx, cy)
        img[inside] = _render(scene["foreground"], x[inside] - offsets[n][0], y[inside] - offsets[n][1])
        frames.append(np.round(img).astype(np.uint8))
    flows, occlusions, foreground = [], [], []
    for n in range(pairs):
        fx, fy = _forward_flow(motions[n], x, y)
        inside = _inside(ellipse, offsets[n], x, y)
        fx, fy = np.where(inside, steps[n][0], fx), np.where(inside, steps[n][1], fy)
        tx, ty = x + fx, y + fy
        outside = (tx < 0) | (tx > width - 1) | (ty < 0) | (ty > height - 1)
        covered = ~inside & _inside(ellipse, offsets[n + 1], tx, ty)
        flows.append(np.stack([fx, fy], -1).astype(np.float32))
        occlusions.append(outside | covered)
        foreground.append(inside)
    return frames, flows, occlusions, foreground


def _backward_flows(scene, height, width):
    """Flow from frame n + 1 back to frame n: the background at p shows C_{n+1}(p) = C_n(p - g_n(p)),
    so it moved by -g_n(p), exactly; the ellipse's pixels in frame n + 1 moved by -s_n."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    flows = []
    for n, (motion, step) in enumerate(zip(scene["motions"], scene["steps"])):
        gx, gy = _g(motion, x, y)
        inside = _inside(scene["ellipse"], scene["offsets"][n + 1], x, y)
        flows.append(np.stack([np.where(inside, -step[0], -gx), np.where(inside, -step[1], -gy)], -1)
                     .astype(np.float32))
    return flows


def moving_object_sequence(*, pairs=1, height=96, width=160, seed=0):
    """One synthetic scene with everything known, as a dict of lists: `frames` (pairs + 1, uint8 RGB),
    `forward` (frame n -> n + 1) and `backward` (frame n + 1 -> n) flows (H, W, 2) float32, and
    `occluded` (H, W) bool per forward flow (its target leaves the picture or is covered by the ellipse)."""
    scene = _draw_scene(np.random.default_rng([seed, 0]), pairs, height, width)
    frames, forward, occluded, _ = _render_scene(scene, height, width)
    return {"frames": frames, "forward": forward, "backward": _backward_flows(scene, height, width),
            "occluded": occluded}


def _final_pass(rng, frame):
    """Sintel's final pass adds blur and atmosphere: a [1 2 1] blur, haze and noise here."""
    f = frame.astype(np.float64)
    for axis in (0, 1):
        f = (np.roll(f, 1, axis) + 2 * f + np.roll(f, -1, axis)) / 4
    f = 0.85 * f + 0.15 * 200 + rng.normal(0, 2.0, f.shape)
    return np.clip(np.round(f), 0, 255).astype(np.uint8)


def make_synthetic_sintel(root: str | os.PathLike, *, scenes: int = 2, pairs: int = 2, height: int = 436,
                          width: int = 1024, seed: int = 0) -> str:
    """Write a Sintel-layout dataset under `root`; returns the path of its `training` folder.

    Per scene `synthetic_N`: pairs + 1 frames in clean/ and final/ (uint8 RGB PNG, height x width),
    and per pair flow/ (.flo, (height, width, 2) float32), occlusions/ and invalid/ (PNG, 0 or 255).
    """
    if scenes < 1 or pairs < 1 or height < 8 or width < 8:
        raise Flownet2Error(f"synthetic dataset: need at least 1 scene and 1 pair per scene, and a size of "
                            f"at least 8x8 (got {scenes} scenes, {pairs} pairs, {height}x{width})")
    training = os.path.join(os.path.abspath(os.fspath(root)), "training")
    for s in tqdm(range(scenes), desc="synthetic scenes", unit="scene"):
        rng = np.random.default_rng([seed, s])
        scene = f"synthetic_{s + 1}"
        frames, flows, occlusions, _ = _scene(rng, pairs, height, width)
        for n, frame in enumerate(frames):
            _save_png(_frame_path(training, "clean", scene, n, ".png"), frame)
            _save_png(_frame_path(training, "final", scene, n, ".png"), _final_pass(rng, frame))
        for n, (flow, occ) in enumerate(zip(flows, occlusions)):
            write_flo(_frame_path(training, "flow", scene, n, ".flo"), flow)
            _save_png(_frame_path(training, "occlusions", scene, n, ".png"), occ.astype(np.uint8) * 255)
            _save_png(_frame_path(training, "invalid", scene, n, ".png"), np.zeros((height, width), np.uint8))
    return training


def _frame_path(training, folder, scene, n, ext):
    """Sintel's name for frame n (0-based) of a scene: folder/scene/frame_000{n+1}{ext}."""
    return os.path.join(training, folder, scene, f"frame_{n + 1:04d}{ext}")


def _sizes(n, height, width, vary):
    """Pair n's frame size: a few pixels smaller per pair where the layout's sizes vary."""
    return (height - 2 * (n % 3), width - 6 * (n % 2)) if vary else (height, width)


def _kitti_valid(rng, height, width):
    """KITTI-like sparse validity: nothing above a horizon (a third of the way down), then ~60%."""
    valid = rng.random((height, width)) < 0.6
    valid[: height // 3] = False
    return valid


def _kitti(root, kind, pairs, height, width, seed):
    training = os.path.join(root, "training")
    frames_dir = "image_2" if kind == "kitti2015" else "colored_0"
    for n in tqdm(range(pairs), desc=f"synthetic {kind}", unit="pair"):
        rng = np.random.default_rng([seed, n])
        h, w = _sizes(n, height, width, vary=True)
        frames, (flow,), (occ,), (fg,) = _scene(rng, 1, h, w)
        stem = f"{n:06d}"
        for k, frame in zip((10, 11), frames):
            _save_png(os.path.join(training, frames_dir, f"{stem}_{k}.png"), frame)
        valid = _kitti_valid(rng, h, w)
        write_kitti_flow(os.path.join(training, "flow_occ", f"{stem}_10.png"), flow, valid)
        write_kitti_flow(os.path.join(training, "flow_noc", f"{stem}_10.png"), flow, valid & ~occ)
        if kind == "kitti2015":  # object 1 = the ellipse (0 = background), whether valid or not
            _save_png(os.path.join(training, "obj_map", f"{stem}_10.png"), fg.astype(np.uint8))
    return root


def _hd1k(root, scenes, pairs, height, width, seed):
    for s in tqdm(range(scenes), desc="synthetic hd1k", unit="sequence"):
        frames, flows, _, _ = _scene(np.random.default_rng([seed, s]), pairs, height, width)
        rng = np.random.default_rng([seed, s, 1])
        for n, frame in enumerate(frames):
            _save_png(os.path.join(root, "hd1k_input", "image_2", f"{s:06d}_{n:04d}.png"), frame)
        for n, flow in enumerate(flows):
            write_kitti_flow(os.path.join(root, "hd1k_flow_gt", "flow_occ", f"{s:06d}_{n:04d}.png"), flow,
                             _kitti_valid(rng, height, width))
    return root


def _middlebury(root, scenes, height, width, seed):
    for s in tqdm(range(scenes), desc="synthetic middlebury", unit="sequence"):
        h, w = _sizes(s, height, width, vary=True)
        frames, (flow,), (occ,), _ = _scene(np.random.default_rng([seed, s]), 1, h, w)
        seq = f"Synthetic{s + 1}"
        for k, frame in zip((10, 11), frames):
            _save_png(os.path.join(root, "other-data", seq, f"frame{k}.png"), frame)
        write_flo(os.path.join(root, "other-gt-flow", seq, "flow10.flo"), np.where(occ[..., None], UNKNOWN, flow))
    return root


def _chairs(root, pairs, height, width, seed):
    data = os.path.join(root, "data")
    for n in tqdm(range(pairs), desc="synthetic chairs", unit="pair"):
        frames, (flow,), _, _ = _scene(np.random.default_rng([seed, n]), 1, height, width)
        for k, frame in zip((1, 2), frames):
            with atomic_write(os.path.join(data, f"{n + 1:05d}_img{k}.ppm"), "wb") as f:
                Image.fromarray(frame).save(f, format="PPM")
        write_flo(os.path.join(data, f"{n + 1:05d}_flow.flo"), flow)
    # every second pair is a validation pair (2), the others training (1)
    with atomic_write(os.path.join(root, "FlyingChairs_train_val.txt"), "w") as f:
        f.write("".join(f"{2 if n % 2 else 1}\n" for n in range(pairs)))
    return root


def make_synthetic(root: str | os.PathLike, layout: str = "sintel", *, scenes: int = 2, pairs: int = 2,
                   height: int = 436, width: int = 1024, seed: int = 0) -> str:
    """Write a dataset in `layout` under `root`; returns the folder to give Flownet2_preprocess.py.

    sintel, hd1k: `scenes` scenes of `pairs` pairs; kitti2015, kitti2012, chairs: `pairs` pairs;
    middlebury: `scenes` sequences of one pair. Frames are at most height x width.
    """
    if layout not in LAYOUTS:
        raise Flownet2Error(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if layout == "sintel":
        return make_synthetic_sintel(root, scenes=scenes, pairs=pairs, height=height, width=width, seed=seed)
    if scenes < 1 or pairs < 1 or height < 16 or width < 16:
        raise Flownet2Error(f"synthetic dataset: need at least 1 scene and 1 pair, and a size of at least "
                            f"16x16 (got {scenes} scenes, {pairs} pairs, {height}x{width})")
    root = os.path.abspath(os.fspath(root))
    if layout in ("kitti2015", "kitti2012"):
        return _kitti(root, layout, pairs, height, width, seed)
    if layout == "hd1k":
        return _hd1k(root, scenes, pairs, height, width, seed)
    if layout == "middlebury":
        return _middlebury(root, scenes, height, width, seed)
    return _chairs(root, pairs, height, width, seed)


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a synthetic dataset in a benchmark's layout.")
    p.add_argument("--layout", choices=LAYOUTS, default="sintel")
    p.add_argument("--out", required=True, help="folder to create (sintel: the dataset is <out>/training)")
    p.add_argument("--scenes", type=int, default=2, help="scenes / sequences (sintel, hd1k, middlebury)")
    p.add_argument("--pairs", type=int, default=2, help="pairs per scene (frames = pairs + 1)")
    p.add_argument("--height", type=int, default=436)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    args = parse(p, argv)
    print(make_synthetic(args.out, args.layout, scenes=args.scenes, pairs=args.pairs, height=args.height,
                         width=args.width, seed=args.seed))
    return 0


if __name__ == "__main__":
    run_main(main)
