/**
 * `fer-datasets/image`, the browser-safe preprocessing: crop → bilinear resize → channel order → [0, 1], checked on
 * hand-made images against hand-derived values, and against the Node path (`rawToModelInput`) that `fer predict` uses.
 */
import { FerInputError } from 'fer-core';
import { rawToModelInput } from 'fer-datasets';
import { preprocessRaw, type RawImage } from 'fer-datasets/image';

/** A width×height RGB image whose pixel (x, y) is (10x + y, 100 + x, 200 + y). */
function ramp(width: number, height: number): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) data.set([10 * x + y, 100 + x, 200 + y], (y * width + x) * 3);
  return { data, width, height };
}

describe('fer-datasets/image preprocessRaw', () => {
  it('crops (clipped like numpy slicing), keeps the size and swaps to BGR', () => {
    const out = preprocessRaw(ramp(3, 2), { crop: { left: 1, top: 1, width: 5, height: 1 }, channelOrder: 'bgr' });
    expect([out.width, out.height]).toEqual([2, 1]);
    // Pixels (1, 1) and (2, 1): RGB (11, 101, 201) and (21, 102, 201), read back as BGR.
    const want = [201, 101, 11, 201, 102, 21].map((v) => v / 255);
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
  });

  it('resizes with OpenCV INTER_LINEAR semantics (half-pixel centres, clamped borders)', () => {
    const img: RawImage = { data: new Uint8Array([0, 0, 0, 255, 255, 255]), width: 2, height: 1 };
    const out = preprocessRaw(img, { size: { width: 4, height: 1 } });
    // Source x = (d + 0.5) / 2 − 0.5 = −0.25, 0.25, 0.75, 1.25 → clamped 0, 0.25, 0.75, 1 of the way from 0 to 255.
    const want = [0, 0.25, 0.75, 1].flatMap((v) => [v, v, v]);
    Array.from(out.data).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
  });

  it('equals the Node path fer predict uses (rawToModelInput) for crop, resize and channel order', async () => {
    const raw = ramp(17, 13);
    const opts = { crop: { left: 2, top: 1, width: 11, height: 9 }, size: 5, channelOrder: 'bgr' as const };
    const page = preprocessRaw(raw, opts);
    const node = await rawToModelInput(raw, opts);
    expect([page.width, page.height]).toEqual([node.width, node.height]);
    expect(Array.from(page.data)).toEqual(Array.from(node.data));
  });

  it("refuses resize: 'antialias' (it needs sharp) with a clear error", () => {
    expect(() => preprocessRaw(ramp(4, 4), { size: 2, resize: 'antialias' })).toThrow(FerInputError);
    expect(() => preprocessRaw(ramp(4, 4), { size: 2, resize: 'antialias' })).toThrow(/rawToModelInput/);
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => preprocessRaw(ramp(4, 4), { size: 2.5 })).toThrow(/positive integer, but got 2.5/);
  });
});
