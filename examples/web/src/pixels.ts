import type { RawImage } from 'fer-datasets/image';

export type { RawImage };

/**
 * Decodes an image file into 8-bit RGB as fer-datasets' `decodeImage` does in Node: no colour-profile conversion, no
 * EXIF rotation, alpha dropped. The 2D canvas is created with `willReadFrequently` so it stays on the CPU raster
 * path, whose `getImageData` returns the decoded bytes unchanged.
 */
export async function decodeBlob(blob: Blob): Promise<RawImage> {
  const bmp = await createImageBitmap(blob, {
    colorSpaceConversion: 'none',
    imageOrientation: 'none' as ImageOrientation,
    premultiplyAlpha: 'none',
  });
  try {
    return drawableToRaw(bmp, bmp.width, bmp.height);
  } finally {
    bmp.close();
  }
}

/** The RGB pixels of anything a 2D canvas can draw (a video frame, an image, a bitmap). */
export function drawableToRaw(src: CanvasImageSource, width: number, height: number): RawImage {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('This browser gave no 2D canvas context.');
  ctx.drawImage(src, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { data, width, height };
}

/** An 8-bit RGB image as a canvas (for display). */
export function rawToCanvas(img: RawImage): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext('2d')!;
  const out = ctx.createImageData(img.width, img.height);
  for (let i = 0, j = 0; i < img.data.length; i += 3, j += 4) {
    out.data[j] = img.data[i];
    out.data[j + 1] = img.data[i + 1];
    out.data[j + 2] = img.data[i + 2];
    out.data[j + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}
