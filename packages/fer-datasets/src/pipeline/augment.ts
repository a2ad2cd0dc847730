/**
 * The reference's augmentations (docs/method.md#data-pipelines) re-implemented on plain float HWC buffers, so they run
 * in worker threads without tfjs. Geometry follows torchvision on PIL images exactly (inverse matrices, PIL's
 * pixel-centre convention and its bilinear/nearest filters); only the random streams differ (our seeded `Rng`, not
 * torch's). Values stay float between steps where PIL would round to uint8 after each one (≤ 0.5/255 per step).
 *
 * A `Transform` is plain data (a list of ops), so it can be posted to a worker and logged with a run.
 */
import { Rng } from 'fer-core';
import { newPixelImage, type PixelImage } from './image';

export type Interpolation = 'bilinear' | 'nearest';

export type TransformOp =
  /** torchvision `ColorJitter(brightness, contrast)`: factors ~ U[1 − b, 1 + b], applied in random order. */
  | { op: 'colorJitter'; brightness: number; contrast: number }
  /** `RandomHorizontalFlip(p)`. */
  | { op: 'hflip'; p: number }
  /** `RandomAffine(degrees, translate, scale)` about the centre; outside pixels get `fill`. */
  | {
      op: 'randomAffine';
      degrees: number;
      translate: [number, number];
      scale: [number, number];
      interpolation: Interpolation;
      fill: number;
    }
  /** `RandomRotation(degrees)`: angle ~ U[−degrees, degrees], counter-clockwise, no expansion. */
  | { op: 'randomRotation'; degrees: number; interpolation: Interpolation; fill: number }
  /** `RandomCrop(size, padding)`: zero-pad every side, then a uniformly placed crop of the original size. */
  | { op: 'randomCrop'; padding: number; fill: number }
  /** `RandomApply([...], p)`: all of `ops` in order, with probability `p`. */
  | { op: 'randomApply'; p: number; ops: TransformOp[] }
  /** `Normalize(mean, std)` per channel. */
  | { op: 'normalize'; mean: [number, number, number]; std: [number, number, number] }
  /** `RandomErasing(p, scale, ratio, value)`; `logRatio` as torchvision ≥ 0.8 (uniform in log space). */
  | {
      op: 'randomErasing';
      p: number;
      scale: [number, number];
      ratio: [number, number];
      value: number;
      logRatio: boolean;
    };

/** A named, serialisable augmentation pipeline that runs after decoding and resizing. */
export interface Transform {
  readonly name: string;
  readonly ops: readonly TransformOp[];
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/**
 * ESR training augmentation for AffectNet and FER+ (docs/method.md#data-pipelines): colour jitter (brightness and
 * contrast 0.5), horizontal flip p 0.5, random affine (±30°, translation ±10 %, scale 1–1.25, bilinear, fill 0). No
 * normalisation (the reference's mean 0 / std 1).
 */
export function esrTrainTransform(): Transform {
  return {
    name: 'esr-train',
    ops: [
      { op: 'colorJitter', brightness: 0.5, contrast: 0.5 },
      { op: 'hflip', p: 0.5 },
      { op: 'randomAffine', degrees: 30, translate: [0.1, 0.1], scale: [1, 1.25], interpolation: 'bilinear', fill: 0 },
    ],
  };
}

/**
 * MA-Net / RAF-DB training augmentation, taken by the reference from DAN (docs/method.md#data-pipelines): (resize at
 * decode) → flip p 0.5 → with p 0.2 {rotation ±20° nearest, then random crop after 32 px zero padding} → ImageNet
 * normalisation → random erasing (p 0.5, area 0.02–0.25, aspect 0.3–3.3, value 0). Used by both RAF-DB scripts (S = 96
 * or 224).
 */
export function manetRafdbTrainTransform(
  opts: { mean?: [number, number, number]; std?: [number, number, number] } = {},
): Transform {
  return {
    name: 'rafdb-train',
    ops: [
      { op: 'hflip', p: 0.5 },
      {
        op: 'randomApply',
        p: 0.2,
        ops: [
          { op: 'randomRotation', degrees: 20, interpolation: 'nearest', fill: 0 },
          { op: 'randomCrop', padding: 32, fill: 0 },
        ],
      },
      { op: 'normalize', mean: opts.mean ?? IMAGENET_MEAN, std: opts.std ?? IMAGENET_STD },
      { op: 'randomErasing', p: 0.5, scale: [0.02, 0.25], ratio: [0.3, 3.3], value: 0, logRatio: true },
    ],
  };
}

/** Evaluation: nothing beyond decode/resize, plus optional normalisation (`'imagenet'` for RAF-DB). */
export function evalTransform(
  normalize: 'none' | 'imagenet' | { mean: [number, number, number]; std: [number, number, number] } = 'none',
): Transform {
  if (normalize === 'none') return { name: 'eval', ops: [] };
  const n = normalize === 'imagenet' ? { mean: IMAGENET_MEAN, std: IMAGENET_STD } : normalize;
  return { name: 'eval-normalized', ops: [{ op: 'normalize', mean: n.mean, std: n.std }] };
}

/** Runs `t` on `img` with randomness from `rng`. May return `img` itself (modified in place) or a new image. */
export function applyTransform(t: Transform | readonly TransformOp[], img: PixelImage, rng: Rng): PixelImage {
  const ops = Array.isArray(t) ? (t as readonly TransformOp[]) : (t as Transform).ops;
  let out = img;
  for (const op of ops) out = applyOp(op, out, rng);
  return out;
}

function applyOp(op: TransformOp, img: PixelImage, rng: Rng): PixelImage {
  switch (op.op) {
    case 'colorJitter': {
      // torchvision draws the order first, then each factor.
      const order = rng.next() < 0.5 ? ['b', 'c'] : ['c', 'b'];
      const b = rng.uniform(Math.max(0, 1 - op.brightness), 1 + op.brightness);
      const c = rng.uniform(Math.max(0, 1 - op.contrast), 1 + op.contrast);
      for (const k of order) {
        if (k === 'b' && op.brightness > 0) adjustBrightness(img, b);
        if (k === 'c' && op.contrast > 0) adjustContrast(img, c);
      }
      return img;
    }
    case 'hflip':
      return rng.next() < op.p ? hflip(img) : img;
    case 'randomAffine': {
      const angle = rng.uniform(-op.degrees, op.degrees);
      const maxDx = op.translate[0] * img.width;
      const maxDy = op.translate[1] * img.height;
      const tx = roundHalfEven(rng.uniform(-maxDx, maxDx));
      const ty = roundHalfEven(rng.uniform(-maxDy, maxDy));
      const scale = rng.uniform(op.scale[0], op.scale[1]);
      return affine(img, { angle, translate: [tx, ty], scale }, op.interpolation, op.fill);
    }
    case 'randomRotation':
      return rotate(img, rng.uniform(-op.degrees, op.degrees), op.interpolation, op.fill);
    case 'randomCrop': {
      const span = 2 * op.padding;
      const top = rng.int(span + 1);
      const left = rng.int(span + 1);
      return padCrop(img, op.padding, top, left, op.fill);
    }
    case 'randomApply':
      return rng.next() < op.p ? applyTransform(op.ops, img, rng) : img;
    case 'normalize':
      return normalize(img, op.mean, op.std);
    case 'randomErasing': {
      if (!(rng.next() < op.p)) return img;
      const box = sampleErasingBox(rng, img.width, img.height, op.scale, op.ratio, op.logRatio);
      return box ? erase(img, box, op.value) : img;
    }
  }
}

/** Python's `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** PIL `ImageEnhance.Brightness`: x · factor, clipped to [0, 1]. In place. */
export function adjustBrightness(img: PixelImage, factor: number): PixelImage {
  const d = img.data;
  const f = Math.max(0, factor);
  for (let i = 0; i < d.length; i++) {
    const v = d[i] * f;
    d[i] = v > 1 ? 1 : v < 0 ? 0 : v;
  }
  return img;
}

/**
 * PIL `ImageEnhance.Contrast`: blend with a uniform grey equal to the rounded mean luma (0.299, 0.587, 0.114 on
 * the channels *as stored*, so BGR data uses swapped weights, docs/method.md#defect-17), clipped. In place. (PIL rounds
 * each pixel's luma before averaging; averaging unrounded values moves the mean by < 0.5 grey levels.)
 */
export function adjustContrast(img: PixelImage, factor: number): PixelImage {
  const d = img.data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 3) sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  const mean = Math.floor((sum * 255) / (d.length / 3) + 0.5) / 255;
  const base = mean * (1 - factor);
  for (let i = 0; i < d.length; i++) {
    const v = base + factor * d[i];
    d[i] = v > 1 ? 1 : v < 0 ? 0 : v;
  }
  return img;
}

/** Mirror left-right (exact), in place. */
export function hflip(img: PixelImage): PixelImage {
  const { width: w, height: h, data: d } = img;
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let a = row, b = row + (w - 1) * 3; a < b; a += 3, b -= 3) {
      const r = d[a];
      const g = d[a + 1];
      const bl = d[a + 2];
      d[a] = d[b];
      d[a + 1] = d[b + 1];
      d[a + 2] = d[b + 2];
      d[b] = r;
      d[b + 1] = g;
      d[b + 2] = bl;
    }
  }
  return img;
}

export interface AffineParams {
  /** Degrees, torchvision `F.affine` convention (clockwise on screen). */
  angle: number;
  /** Pixels [tx, ty]. */
  translate: [number, number];
  scale: number;
}

/**
 * torchvision `_get_inverse_affine_matrix` with zero shear: the 2×3 matrix mapping *output* coordinates to *input*
 * coordinates (PIL convention, pixel centres at +0.5), about `center`.
 */
export function inverseAffineMatrix(center: [number, number], p: AffineParams): number[] {
  const rot = (p.angle * Math.PI) / 180;
  const [cx, cy] = center;
  const [tx, ty] = p.translate;
  const m = [Math.cos(rot), Math.sin(rot), 0, -Math.sin(rot), Math.cos(rot), 0].map((v) => v / p.scale);
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

/** torchvision `F.affine` on a PIL image: centre (w/2, h/2), then PIL's `Image.transform(AFFINE)`. */
export function affine(
  img: PixelImage,
  p: AffineParams,
  interpolation: Interpolation = 'bilinear',
  fill = 0,
): PixelImage {
  const m = inverseAffineMatrix([img.width * 0.5, img.height * 0.5], p);
  return warpAffine(img, m, interpolation, fill);
}

/** PIL `Image.rotate(angle)` (counter-clockwise degrees, about the centre, same canvas). */
export function rotate(img: PixelImage, angle: number, interpolation: Interpolation = 'nearest', fill = 0): PixelImage {
  // PIL builds the inverse matrix from −angle; that equals F.affine's matrix for −angle.
  return affine(img, { angle: -angle, translate: [0, 0], scale: 1 }, interpolation, fill);
}

/**
 * PIL's generic affine transform: output pixel (x, y) samples the input at `m · (x + 0.5, y + 0.5, 1)`.
 * Bilinear: PIL's `bilinear_filter` (points outside [0, w) × [0, h) get `fill`; neighbours clamp at the border).
 * Nearest: floor of the sample point.
 */
export function warpAffine(
  img: PixelImage,
  m: readonly number[],
  interpolation: Interpolation,
  fill: number,
): PixelImage {
  const { width: w, height: h, data: src } = img;
  const out = newPixelImage(w, h);
  const dst = out.data;
  const [a, b, c, d, e, f] = m;
  let o = 0;
  for (let y = 0; y < h; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < w; x++, o += 3) {
      const xc = x + 0.5;
      const xin = a * xc + b * yc + c;
      const yin = d * xc + e * yc + f;
      if (!(xin >= 0 && xin < w && yin >= 0 && yin < h)) {
        dst[o] = fill;
        dst[o + 1] = fill;
        dst[o + 2] = fill;
        continue;
      }
      if (interpolation === 'nearest') {
        const s = ((yin | 0) * w + (xin | 0)) * 3;
        dst[o] = src[s];
        dst[o + 1] = src[s + 1];
        dst[o + 2] = src[s + 2];
        continue;
      }
      const xs = xin - 0.5;
      const ys = yin - 0.5;
      const x0 = Math.floor(xs);
      const y0 = Math.floor(ys);
      const dx = xs - x0;
      const dy = ys - y0;
      const xa = (x0 < 0 ? 0 : x0 >= w ? w - 1 : x0) * 3;
      const xb = (x0 + 1 < 0 ? 0 : x0 + 1 >= w ? w - 1 : x0 + 1) * 3;
      const r0 = (y0 < 0 ? 0 : y0 >= h ? h - 1 : y0) * w * 3;
      const hasNext = y0 + 1 >= 0 && y0 + 1 < h;
      const r1 = hasNext ? (y0 + 1) * w * 3 : r0;
      // Without a next row PIL uses v2 = v1, which r1 = r0 reproduces.
      const a0 = r0 + xa;
      const b0 = r0 + xb;
      const a1 = r1 + xa;
      const b1 = r1 + xb;
      let v1 = src[a0] + (src[b0] - src[a0]) * dx;
      let v2 = src[a1] + (src[b1] - src[a1]) * dx;
      dst[o] = v1 + (v2 - v1) * dy;
      v1 = src[a0 + 1] + (src[b0 + 1] - src[a0 + 1]) * dx;
      v2 = src[a1 + 1] + (src[b1 + 1] - src[a1 + 1]) * dx;
      dst[o + 1] = v1 + (v2 - v1) * dy;
      v1 = src[a0 + 2] + (src[b0 + 2] - src[a0 + 2]) * dx;
      v2 = src[a1 + 2] + (src[b1 + 2] - src[a1 + 2]) * dx;
      dst[o + 2] = v1 + (v2 - v1) * dy;
    }
  }
  return out;
}

/** Zero-pads `padding` pixels on every side, then takes the original-size window at (top, left) of the padded image. */
export function padCrop(img: PixelImage, padding: number, top: number, left: number, fill = 0): PixelImage {
  const { width: w, height: h } = img;
  const out = newPixelImage(w, h);
  if (fill !== 0) out.data.fill(fill);
  for (let y = 0; y < h; y++) {
    const sy = y + top - padding;
    if (sy < 0 || sy >= h) continue;
    for (let x = 0; x < w; x++) {
      const sx = x + left - padding;
      if (sx < 0 || sx >= w) continue;
      const s = (sy * w + sx) * 3;
      const t = (y * w + x) * 3;
      out.data[t] = img.data[s];
      out.data[t + 1] = img.data[s + 1];
      out.data[t + 2] = img.data[s + 2];
    }
  }
  return out;
}

/** (x − mean) / std per channel. In place. */
export function normalize(img: PixelImage, mean: readonly number[], std: readonly number[]): PixelImage {
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    d[i] = (d[i] - mean[0]) / std[0];
    d[i + 1] = (d[i + 1] - mean[1]) / std[1];
    d[i + 2] = (d[i + 2] - mean[2]) / std[2];
  }
  return img;
}

export interface EraseBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * torchvision `RandomErasing.get_params`: up to 10 attempts; area ~ U[scale]·H·W, aspect r ~ U[ratio] (log-uniform
 * when `logRatio`), h = round(√(area·r)), w = round(√(area/r)); accepted when h < H and w < W, placed uniformly.
 * Returns `null` when no attempt fits (nothing is erased).
 */
export function sampleErasingBox(
  rng: Rng,
  width: number,
  height: number,
  scale: [number, number],
  ratio: [number, number],
  logRatio = true,
): EraseBox | null {
  const area = width * height;
  for (let attempt = 0; attempt < 10; attempt++) {
    const eraseArea = area * rng.uniform(scale[0], scale[1]);
    const r = logRatio
      ? Math.exp(rng.uniform(Math.log(ratio[0]), Math.log(ratio[1])))
      : rng.uniform(ratio[0], ratio[1]);
    const h = roundHalfEven(Math.sqrt(eraseArea * r));
    const w = roundHalfEven(Math.sqrt(eraseArea / r));
    if (!(h < height && w < width)) continue;
    const top = rng.int(height - h + 1);
    const left = rng.int(width - w + 1);
    return { top, left, height: h, width: w };
  }
  return null;
}

/** Sets every channel inside `box` to `value`. In place. */
export function erase(img: PixelImage, box: EraseBox, value = 0): PixelImage {
  for (let y = box.top; y < box.top + box.height; y++) {
    const row = (y * img.width + box.left) * 3;
    img.data.fill(value, row, row + box.width * 3);
  }
  return img;
}
