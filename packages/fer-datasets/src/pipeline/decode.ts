import { promises as fs } from 'node:fs';
import sharp from 'sharp';
import { FER_ERROR_CODES, FerError, type FerErrorOptions } from 'fer-core';
import {
  cropRaw,
  outputSize,
  preprocessRaw,
  rawToPixels,
  swapRedBlue,
  type LoadImageOptions,
  type PixelImage,
  type RawImage,
} from './image';

export type { LoadImageOptions };

// Decoding happens on libvips threads; one image at a time per call keeps memory flat, and the operation cache
// would hold decoded pixels we never reuse.
sharp.cache(false);

/** An image that could not be read or decoded; datasets skip and count these. */
export class ImageDecodeError extends FerError {
  override name = 'ImageDecodeError';
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: FerErrorOptions,
  ) {
    super(FER_ERROR_CODES.imageDecode, `Cannot read image '${path}': ${reason}`, options);
  }
}

/**
 * The decoder's reason on one line: libvips repeats its messages (each once here), and some errors end without a
 * detail ("corrupt header:"), which then names the size and first bytes instead of leaving the user with nothing.
 */
export function decoderReason(e: unknown, bytes: Uint8Array): string {
  const raw = (e instanceof Error ? e.message : String(e ?? '')).replace(/\s+/g, ' ').trim();
  const parts = raw.split(/ (?=vips\w*: |Vips\w*: )/);
  const text = [...new Set(parts)].join(' ').trim();
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const detail = `${bytes.length} bytes${bytes.length ? `, starting ${head}` : ''}`;
  if (!text || /^unknown error$/i.test(text)) return `not a decodable image (${detail})`;
  return text.endsWith(':') ? `${text} no detail from the decoder (${detail})` : text;
}

/**
 * Decodes JPEG, PNG, TIFF, WebP or GIF (first frame) into 8-bit RGB; grey and palette images are expanded to
 * 3 equal channels and alpha is dropped. The file is read fully before decoding, so no descriptor stays open.
 * Throws `ImageDecodeError` for missing, unreadable, truncated or non-image files.
 */
export async function decodeImage(
  input: string | Uint8Array,
  label = typeof input === 'string' ? input : '<buffer>',
): Promise<RawImage> {
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await fs.readFile(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ImageDecodeError(label, code === 'ENOENT' ? 'file not found' : (e as Error).message, { cause: e });
    }
  } else {
    bytes = input;
  }
  try {
    // 'error' rejects truncated and corrupt files but tolerates libjpeg's minor warnings (e.g. extraneous bytes),
    // which OpenCV also reads through.
    const { data, info } = await sharp(bytes, { failOn: 'error' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return toRgb(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.width, info.height, info.channels);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(label, decoderReason(e, bytes), { cause: e });
  }
}

function toRgb(data: Uint8Array, width: number, height: number, channels: number): RawImage {
  if (channels === 3) return { data, width, height };
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < out.length; i += channels, j += 3) {
    out[j] = data[i];
    out[j + 1] = data[channels >= 3 ? i + 1 : i];
    out[j + 2] = data[channels >= 3 ? i + 2 : i];
  }
  return { data: out, width, height };
}

/**
 * Decode → crop → resize → channel order → [0, 1] floats (HWC, 3 channels). The low-level entry for
 * `fer predict` and for tests that want one image's pixels without tfjs.
 */
export async function loadImage(input: string | Uint8Array, opts: LoadImageOptions = {}): Promise<PixelImage> {
  const raw = await decodeImage(input);
  return rawToModelInput(raw, opts);
}

/** The crop/resize/channel steps of `loadImage` on a decoded image (`preprocessRaw`, plus PIL-style resize). */
export async function rawToModelInput(raw: RawImage, opts: LoadImageOptions = {}): Promise<PixelImage> {
  if ((opts.resize ?? 'bilinear') === 'bilinear') return preprocessRaw(raw, opts);
  const img = opts.crop ? cropRaw(raw, opts.crop) : raw;
  const { width, height } = outputSize(opts.size, img.width, img.height);
  let out: PixelImage;
  if (width === img.width && height === img.height) {
    out = rawToPixels(img);
  } else {
    const { data } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(width, height, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    out = rawToPixels({ data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height });
  }
  if (opts.channelOrder === 'bgr') swapRedBlue(out.data);
  return out;
}

/** Encodes an 8-bit RGB image as JPEG (quality 95, OpenCV's default, as the reference's preprocessing writes). */
export async function encodeJpeg(img: RawImage, quality = 95): Promise<Buffer> {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}
