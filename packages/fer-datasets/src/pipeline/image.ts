/**
 * Plain pixel buffers, so decoding and augmentation run anywhere (main thread or worker) without tfjs.
 * Layout is always HWC with 3 channels, row-major. No Node import here: this module is `fer-datasets/image`, the
 * browser-safe entry.
 */
import { FerInputError } from 'fer-core';

/** A 3-channel float image, HWC row-major: `data[(y * width + x) * 3 + c]`. Values in [0, 1] until normalised. */
export interface PixelImage {
  data: Float32Array;
  width: number;
  height: number;
}

/** A decoded 8-bit image, HWC row-major, 3 channels. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** A face box in pixels: `left`/`top` are the column/row of the first pixel, `width`/`height` its extent. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * `rgb` keeps the decoder's order; `bgr` swaps channels 0 and 2 as OpenCV's `imread` does
 * (docs/method.md#data-pipelines).
 */
export type ChannelOrder = 'rgb' | 'bgr';

/**
 * `bilinear`: OpenCV `INTER_LINEAR` (half-pixel centres, no antialiasing), as the reference's cv2 path for
 * AffectNet and FER+. `antialias`: a triangle filter widened when shrinking, like PIL's `BILINEAR` resize used by
 * the reference's RAF-DB `transforms.Resize` (computed by libvips through sharp).
 */
export type ResizeMode = 'bilinear' | 'antialias';

/** How a decoded image becomes model input (`loadImage`, `rawToModelInput`, `preprocessRaw`). */
export interface LoadImageOptions {
  /** Output size: a square side or `{ width, height }`. Omit to keep the (cropped) size. */
  size?: number | { width: number; height: number };
  /** Face box to cut out first; clipped to the image like numpy slicing. */
  crop?: CropBox;
  /** Default `rgb`. `bgr` reproduces the reference's OpenCV path (AffectNet, FER+). */
  channelOrder?: ChannelOrder;
  /** Default `bilinear` (OpenCV INTER_LINEAR); `antialias` for PIL-style shrinking (Node only: sharp). */
  resize?: ResizeMode;
}

/** The output size `opts.size` asks for, given the (cropped) image's; validated. */
export function outputSize(size: LoadImageOptions['size'], w: number, h: number): { width: number; height: number } {
  if (size === undefined) return { width: w, height: h };
  const s = typeof size === 'number' ? { width: size, height: size } : size;
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v <= 0)
      throw new FerInputError(`Expected image ${k} to be a positive integer, but got ${v}.`);
  }
  return s;
}

/**
 * Crop → bilinear resize → channel order → [0, 1] floats (HWC), synchronously and without Node: the steps of
 * `fer predict` (`rawToModelInput`) after decoding, for pages that decode with a canvas. `resize: 'antialias'`
 * needs libvips, so it is refused here (use `rawToModelInput` from `fer-datasets` in Node).
 */
export function preprocessRaw(raw: RawImage, opts: LoadImageOptions = {}): PixelImage {
  if (opts.resize === 'antialias')
    throw new FerInputError(
      "Expected resize 'bilinear' in preprocessRaw, but got 'antialias' (PIL-style resizing needs sharp): use " +
        "rawToModelInput from 'fer-datasets' in Node, or resize: 'bilinear'.",
    );
  const img = opts.crop ? cropRaw(raw, opts.crop) : raw;
  const { width, height } = outputSize(opts.size, img.width, img.height);
  const out = width === img.width && height === img.height ? rawToPixels(img) : resizeBilinear(img, width, height);
  if (opts.channelOrder === 'bgr') swapRedBlue(out.data);
  return out;
}

export function newPixelImage(width: number, height: number): PixelImage {
  return { data: new Float32Array(width * height * 3), width, height };
}

export function clonePixels(img: PixelImage): PixelImage {
  return { data: img.data.slice(), width: img.width, height: img.height };
}

/** Crops a raw image; the box is clipped to the image (as numpy slicing does). Throws on an empty result. */
export function cropRaw(img: RawImage, box: CropBox): RawImage {
  const x0 = Math.max(0, Math.floor(box.left));
  const y0 = Math.max(0, Math.floor(box.top));
  const x1 = Math.min(img.width, Math.floor(box.left + box.width));
  const y1 = Math.min(img.height, Math.floor(box.top + box.height));
  if (x1 <= x0 || y1 <= y0) {
    throw new RangeError(
      `Crop box (left ${box.left}, top ${box.top}, width ${box.width}, height ${box.height}) lies outside the ` +
        `${img.width}x${img.height} image.`,
    );
  }
  const w = x1 - x0;
  const h = y1 - y0;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const src = ((y0 + y) * img.width + x0) * 3;
    out.set(img.data.subarray(src, src + w * 3), y * w * 3);
  }
  return { data: out, width: w, height: h };
}

/** Swaps channels 0 and 2 in place. */
export function swapRedBlue(data: Float32Array | Uint8Array): void {
  for (let i = 0; i < data.length; i += 3) {
    const t = data[i];
    data[i] = data[i + 2];
    data[i + 2] = t;
  }
}

/**
 * OpenCV `cv2.resize(..., INTER_LINEAR)` semantics on a raw image: source coordinate `(d + 0.5) * scale - 0.5`,
 * clamped at the borders, no antialiasing. Returns floats scaled by `scale` (1/255 gives [0, 1]); OpenCV rounds to
 * uint8 with 11-bit fixed-point weights, so its output differs from this by at most one grey level.
 */
export function resizeBilinear(img: RawImage, width: number, height: number, scale = 1 / 255): PixelImage {
  const out = newPixelImage(width, height);
  const sw = img.width;
  const sh = img.height;
  const xs = new Int32Array(width * 2);
  const xf = new Float32Array(width);
  const fx = sw / width;
  for (let x = 0; x < width; x++) {
    const s = (x + 0.5) * fx - 0.5;
    let x0 = Math.floor(s);
    let f = s - x0;
    if (x0 < 0) {
      x0 = 0;
      f = 0;
    }
    if (x0 >= sw - 1) {
      x0 = sw - 1;
      f = 0;
    }
    xs[2 * x] = x0 * 3;
    xs[2 * x + 1] = Math.min(x0 + 1, sw - 1) * 3;
    xf[x] = f;
  }
  const fy = sh / height;
  const src = img.data;
  const dst = out.data;
  for (let y = 0; y < height; y++) {
    const sy = (y + 0.5) * fy - 0.5;
    let y0 = Math.floor(sy);
    let wy = sy - y0;
    if (y0 < 0) {
      y0 = 0;
      wy = 0;
    }
    if (y0 >= sh - 1) {
      y0 = sh - 1;
      wy = 0;
    }
    const r0 = y0 * sw * 3;
    const r1 = Math.min(y0 + 1, sh - 1) * sw * 3;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      const a = xs[2 * x];
      const b = xs[2 * x + 1];
      const wx = xf[x];
      const ta = r0 + a;
      const tb = r0 + b;
      const ba = r1 + a;
      const bb = r1 + b;
      let top = src[ta] + (src[tb] - src[ta]) * wx;
      let bot = src[ba] + (src[bb] - src[ba]) * wx;
      dst[o] = (top + (bot - top) * wy) * scale;
      top = src[ta + 1] + (src[tb + 1] - src[ta + 1]) * wx;
      bot = src[ba + 1] + (src[bb + 1] - src[ba + 1]) * wx;
      dst[o + 1] = (top + (bot - top) * wy) * scale;
      top = src[ta + 2] + (src[tb + 2] - src[ta + 2]) * wx;
      bot = src[ba + 2] + (src[bb + 2] - src[ba + 2]) * wx;
      dst[o + 2] = (top + (bot - top) * wy) * scale;
    }
  }
  return out;
}

/** Raw uint8 → float image scaled by `scale` without resizing. */
export function rawToPixels(img: RawImage, scale = 1 / 255): PixelImage {
  const out = newPixelImage(img.width, img.height);
  for (let i = 0; i < img.data.length; i++) out.data[i] = img.data[i] * scale;
  return out;
}

/** Float image in [0, 1] → uint8 (rounded, clipped). */
export function pixelsToRaw(img: PixelImage): RawImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(img.data[i] * 255)));
  return { data: out, width: img.width, height: img.height };
}
