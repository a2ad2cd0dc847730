/**
 * Procedurally drawn cartoon faces whose expression is carried by geometry a 96×96 CNN can see: mouth curvature,
 * openness and width, brow height and slant, eye openness, nose wrinkles and one-sided mouth corners. Everything
 * else varies as nuisance: pose (roll, fake yaw, scale, position), skin and hair tone, background colour, gradient
 * and clutter, lighting direction and strength, gaze, sensor noise. Class cues are jittered per sample so the
 * classes overlap a little and a small network needs a few epochs, not a few steps.
 *
 * Deterministic: the same (emotion, seed, size) always gives the same pixels. No tfjs, no files.
 */
import { Rng, type Emotion } from 'fer-core';
import { newPixelImage, type PixelImage } from '../pipeline/image';

interface Expression {
  /** Brow inner / outer end height offsets (negative = raised), in face units. */
  browInner: number;
  browOuter: number;
  /** Eye opening relative to neutral. */
  eyeOpen: number;
  /** Mouth corner lift (positive = smile) for the left and right corner. */
  cornerL: number;
  cornerR: number;
  /** Mouth opening height and half-width. */
  mouthOpen: number;
  mouthWidth: number;
  /** Nose wrinkle strength (disgust). */
  wrinkle: number;
  /** Teeth visible when open. */
  teeth: boolean;
}

const BASE: Record<Emotion, Omit<Expression, 'teeth'> & { teeth: number }> = {
  neutral: {
    browInner: 0,
    browOuter: 0,
    eyeOpen: 1,
    cornerL: 0,
    cornerR: 0,
    mouthOpen: 0,
    mouthWidth: 0.3,
    wrinkle: 0,
    teeth: 0,
  },
  happy: {
    browInner: 0,
    browOuter: 0.02,
    eyeOpen: 0.72,
    cornerL: 0.15,
    cornerR: 0.15,
    mouthOpen: 0.08,
    mouthWidth: 0.38,
    wrinkle: 0,
    teeth: 0.7,
  },
  sad: {
    browInner: -0.1,
    browOuter: 0.05,
    eyeOpen: 0.8,
    cornerL: -0.12,
    cornerR: -0.12,
    mouthOpen: 0,
    mouthWidth: 0.28,
    wrinkle: 0,
    teeth: 0,
  },
  surprise: {
    browInner: -0.15,
    browOuter: -0.13,
    eyeOpen: 1.5,
    cornerL: 0,
    cornerR: 0,
    mouthOpen: 0.34,
    mouthWidth: 0.17,
    wrinkle: 0,
    teeth: 0,
  },
  fear: {
    browInner: -0.13,
    browOuter: -0.02,
    eyeOpen: 1.4,
    cornerL: -0.04,
    cornerR: -0.04,
    mouthOpen: 0.13,
    mouthWidth: 0.4,
    wrinkle: 0,
    teeth: 0.5,
  },
  disgust: {
    browInner: 0.07,
    browOuter: 0.02,
    eyeOpen: 0.6,
    cornerL: -0.07,
    cornerR: -0.03,
    mouthOpen: 0.08,
    mouthWidth: 0.29,
    wrinkle: 1,
    teeth: 0.6,
  },
  anger: {
    browInner: 0.13,
    browOuter: -0.05,
    eyeOpen: 0.65,
    cornerL: -0.03,
    cornerR: -0.03,
    mouthOpen: 0,
    mouthWidth: 0.24,
    wrinkle: 0.2,
    teeth: 0,
  },
  contempt: {
    browInner: 0,
    browOuter: 0,
    eyeOpen: 0.9,
    cornerL: 0,
    cornerR: 0.17,
    mouthOpen: 0,
    mouthWidth: 0.31,
    wrinkle: 0,
    teeth: 0,
  },
};

function expressionFor(emotion: Emotion, rng: Rng): Expression {
  const b = BASE[emotion];
  const j = (x: number, s: number) => x + s * rng.normal();
  let cornerL = j(1.3 * b.cornerL, 0.03);
  let cornerR = j(1.3 * b.cornerR, 0.03);
  // Contempt's raised corner is on a random side (and flips are an augmentation anyway).
  if (emotion === 'contempt' && rng.next() < 0.5) [cornerL, cornerR] = [cornerR, cornerL];
  return {
    browInner: j(1.3 * b.browInner, 0.03),
    browOuter: j(1.3 * b.browOuter, 0.025),
    eyeOpen: Math.max(0.25, j(b.eyeOpen, 0.12)),
    cornerL,
    cornerR,
    mouthOpen: Math.max(0, j(b.mouthOpen, 0.035)),
    mouthWidth: Math.max(0.12, j(b.mouthWidth, 0.035)),
    wrinkle: Math.max(0, j(b.wrinkle, 0.2)),
    teeth: rng.next() < b.teeth,
  };
}

type Rgb = [number, number, number];

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** dst ← dst + (c − dst)·t, in place (no allocation in the pixel loop). */
function blend(dst: Float64Array, c: ArrayLike<number>, t: number): void {
  dst[0] += (c[0] - dst[0]) * t;
  dst[1] += (c[1] - dst[1]) * t;
  dst[2] += (c[2] - dst[2]) * t;
}

/** dst ← dst·(1 − t·(1 − f)): darken by factor f with weight t, in place. */
function darken(dst: Float64Array, f: number, t: number): void {
  const m = 1 - t * (1 - f);
  dst[0] *= m;
  dst[1] *= m;
  dst[2] *= m;
}

function randomColour(rng: Rng): Rgb {
  return [rng.next(), rng.next(), rng.next()];
}

const SKIN_LIGHT: Rgb = [0.96, 0.83, 0.72];
const SKIN_DARK: Rgb = [0.36, 0.22, 0.14];
const SCLERA: Rgb = [0.95, 0.95, 0.93];
const PUPIL: Rgb = [0.02, 0.02, 0.02];
const LID: Rgb = [0.15, 0.1, 0.08];
const NOSTRIL: Rgb = [0.2, 0.1, 0.08];
const TEETH: Rgb = [0.92, 0.9, 0.85];
const MOUTH: Rgb = [0.18, 0.03, 0.04];

/** Coverage of a shape with signed distance `d` (negative inside) for an antialiasing width `aa`. */
function cover(d: number, aa: number): number {
  const t = 0.5 - d / aa;
  return t <= 0 ? 0 : t >= 1 ? 1 : t;
}

/** Approximate signed distance to an axis-aligned ellipse centred at the origin. */
function ellipseSd(u: number, v: number, a: number, b: number): number {
  return (Math.sqrt((u / a) * (u / a) + (v / b) * (v / b)) - 1) * Math.min(a, b);
}

/** Distance from (u, v) to the segment (x0, y0)-(x1, y1). */
function segmentDist(u: number, v: number, x0: number, y0: number, x1: number, y1: number): number {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const t = Math.max(0, Math.min(1, ((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy)));
  const px = x0 + t * dx - u;
  const py = y0 + t * dy - v;
  return Math.sqrt(px * px + py * py);
}

/**
 * Draws one face. `size` is the square output side; values in [0, 1], RGB, HWC.
 * @param emotion the expression to draw
 * @param seed all nuisance and cue jitter derive from it
 */
export function renderSyntheticFace(emotion: Emotion, seed: number, size: number): PixelImage {
  const rng = new Rng(seed);
  const ex = expressionFor(emotion, rng);

  // Pose and appearance.
  const roll = rng.uniform(-0.26, 0.26); // ±15°
  const scale = rng.uniform(0.36, 0.46); // face half-height as a fraction of the image
  const cx = 0.5 + rng.uniform(-0.05, 0.05);
  const cy = 0.52 + rng.uniform(-0.05, 0.05);
  const yaw = rng.uniform(-0.2, 0.2);
  const skin = mix(SKIN_LIGHT, SKIN_DARK, rng.next() ** 1.2);
  const hair: Rgb = mix([0.05, 0.04, 0.03], [0.75, 0.6, 0.35], rng.next() ** 2);
  const hasHair = rng.next() < 0.75;
  const hairline = rng.uniform(-0.75, -0.5);
  const lip = mix(skin, [0.55, 0.15, 0.15], rng.uniform(0.3, 0.7));
  const iris = mix([0.1, 0.07, 0.05], [0.3, 0.45, 0.6], rng.next());
  const gazeX = rng.uniform(-0.03, 0.03);
  const gazeY = rng.uniform(-0.015, 0.015);
  const bg0 = mix(randomColour(rng), [0.5, 0.5, 0.5], rng.uniform(0.2, 0.6));
  const bg1 = mix(bg0, randomColour(rng), rng.uniform(0.2, 0.7));
  const gradAngle = rng.uniform(0, 2 * Math.PI);
  const lightAngle = rng.uniform(0, 2 * Math.PI);
  const light = rng.uniform(0, 0.55);
  const ambient = rng.uniform(0.65, 1.15);
  const noise = rng.uniform(0.005, 0.03);
  const clutter: { x: number; y: number; a: number; b: number; c: Rgb }[] = [];
  const nClutter = rng.int(3);
  for (let k = 0; k < nClutter; k++) {
    clutter.push({
      x: rng.next(),
      y: rng.next(),
      a: rng.uniform(0.05, 0.25),
      b: rng.uniform(0.05, 0.25),
      c: randomColour(rng),
    });
  }

  const img = newPixelImage(size, size);
  const cosR = Math.cos(roll);
  const sinR = Math.sin(roll);
  const aa = 1.5 / (size * scale); // one and a half pixels in face units
  const lx = Math.cos(lightAngle);
  const ly = Math.sin(lightAngle);
  const gx = Math.cos(gradAngle);
  const gy = Math.sin(gradAngle);
  const fs = 1 - Math.abs(yaw) * 0.35; // features squeeze toward the turned side
  const fshift = yaw * 0.22;
  const mouthY = 0.46;
  const eyeY = -0.12;
  const browY = -0.34;

  const col = new Float64Array(3);
  const face = new Float64Array(3);
  let o = 0;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++, o += 3) {
      const x = (px + 0.5) / size;
      const y = (py + 0.5) / size;
      // Background: gradient plus clutter blobs.
      const g = 0.5 + 0.5 * ((x - 0.5) * gx + (y - 0.5) * gy) * 1.4;
      col[0] = bg0[0] + (bg1[0] - bg0[0]) * g;
      col[1] = bg0[1] + (bg1[1] - bg0[1]) * g;
      col[2] = bg0[2] + (bg1[2] - bg0[2]) * g;
      for (const c of clutter) {
        if (Math.abs(x - c.x) > c.a + 0.02 || Math.abs(y - c.y) > c.b + 0.02) continue;
        const k = cover(ellipseSd(x - c.x, y - c.y, c.a, c.b), 1.5 / size);
        if (k > 0) blend(col, c.c, k);
      }
      // Face-local coordinates (v downward, face half-height 1).
      const dx = (x - cx) / scale;
      const dy = (y - cy) / scale;
      const u = cosR * dx + sinR * dy;
      const v = -sinR * dx + cosR * dy;
      const head = cover(ellipseSd(u, v, 0.78, 1.0), aa);
      if (hasHair) {
        const hairK = cover(ellipseSd(u, v + 0.08, 0.86, 1.05), aa) * cover(v - hairline - 0.08 * Math.sin(u * 6), aa);
        if (hairK > 0) blend(col, hair, hairK);
      }
      if (head > 0) {
        const shade = ambient * (1 + light * (u * lx + v * ly) * 0.6);
        face[0] = skin[0] * shade;
        face[1] = skin[1] * shade;
        face[2] = skin[2] * shade;
        if (hasHair) blend(face, hair, cover(v - hairline - 0.08 * Math.sin(u * 6), aa));
        // Features in yaw-shifted coordinates.
        const fu = (u - fshift) / fs;
        const fv = v;
        // Eyes and brows (culled by row band: most pixels are plain skin).
        for (const side of fv > -0.62 && fv < 0.12 ? [-1, 1] : []) {
          const ex0 = side * 0.31;
          const eh = 0.075 * ex.eyeOpen;
          const ed = ellipseSd(fu - ex0, fv - eyeY, 0.14, eh);
          const ek = cover(ed, aa);
          if (ek > 0) {
            blend(face, SCLERA, ek);
            const ik = cover(Math.sqrt((fu - ex0 - gazeX) ** 2 + (fv - eyeY - gazeY) ** 2) - 0.06, aa) * ek;
            if (ik > 0) blend(face, iris, ik);
            const pk = cover(Math.sqrt((fu - ex0 - gazeX) ** 2 + (fv - eyeY - gazeY) ** 2) - 0.025, aa) * ek;
            if (pk > 0) blend(face, PUPIL, pk);
          }
          // Eye outline (lids).
          const lk = cover(Math.abs(ed) - 0.012, aa) * 0.8;
          if (lk > 0) blend(face, LID, lk);
          // Brow: inner end near the centre line.
          const bi = browY + ex.browInner;
          const bo = browY + ex.browOuter;
          const bd = segmentDist(fu, fv, side * 0.1, bi, side * 0.5, bo) - 0.045;
          const bk = cover(bd, aa);
          if (bk > 0) blend(face, hair, bk * 0.95);
        }
        // Nose: a soft shadow line and nostrils; wrinkles for disgust.
        const nearNose = fv > -0.1 && fv < 0.4 && Math.abs(fu) < 0.35;
        const nk = !nearNose ? 0 : cover(segmentDist(fu, fv, 0.03, 0.0, 0.07, 0.2) - 0.018, aa) * 0.35;
        if (nk > 0) darken(face, 0.6, nk);
        for (const side of nearNose ? [-1, 1] : []) {
          const rk = cover(ellipseSd(fu - side * 0.07, fv - 0.24, 0.035, 0.022), aa) * 0.6;
          if (rk > 0) blend(face, NOSTRIL, rk);
          if (ex.wrinkle > 0.05) {
            for (let w = 0; w < 3; w++) {
              const wk =
                cover(segmentDist(fu, fv, side * 0.1, 0.02 + w * 0.05, side * 0.2, -0.02 + w * 0.05) - 0.01, aa) *
                Math.min(1, ex.wrinkle) *
                0.7;
              if (wk > 0) darken(face, 0.45, wk);
            }
          }
        }
        // Mouth: centre line y(u) = mouthY − lift·(u/w)², lift per side; an open mouth is the region between
        // the two lips, which part by `mouthOpen` at the centre and meet at the corners.
        const mw = ex.mouthWidth;
        const t = fu / mw;
        if (Math.abs(t) < 1.15 && Math.abs(fv - mouthY) < 0.45) {
          const tc = Math.min(1, Math.abs(t));
          const lift = t < 0 ? ex.cornerL : ex.cornerR;
          const mid = mouthY - lift * tc * tc;
          const half = 0.5 * ex.mouthOpen * Math.sqrt(Math.max(0, 1 - tc * tc));
          const edge = (Math.abs(t) - 1) * mw; // >0 beyond the corner
          const inside = Math.max(Math.abs(fv - mid) - half, edge);
          if (half > 0.004) {
            const ik = cover(inside, aa);
            if (ik > 0) {
              const teeth = ex.teeth && fv < mid - half + Math.min(0.06, half);
              blend(face, teeth ? TEETH : MOUTH, ik);
            }
          }
          const lk = cover(Math.max(Math.abs(Math.abs(fv - mid) - half) - 0.03, edge), aa);
          if (lk > 0) blend(face, lip, lk);
        }
        blend(col, face, head);
      }
      img.data[o] = col[0];
      img.data[o + 1] = col[1];
      img.data[o + 2] = col[2];
    }
  }
  // Sensor noise, then clip.
  const d = img.data;
  for (let i = 0; i < d.length; i += 2) {
    // Box-Muller, using both outputs.
    const r = noise * Math.sqrt(-2 * Math.log(1 - rng.next()));
    const t = 2 * Math.PI * rng.next();
    const a = d[i] + r * Math.cos(t);
    d[i] = a < 0 ? 0 : a > 1 ? 1 : a;
    if (i + 1 < d.length) {
      const b = d[i + 1] + r * Math.sin(t);
      d[i + 1] = b < 0 ? 0 : b > 1 ? 1 : b;
    }
  }
  return img;
}
