import { Rng } from 'fer-core';
import {
  adjustBrightness,
  adjustContrast,
  affine,
  applyTransform,
  erase,
  esrTrainTransform,
  evalTransform,
  hflip,
  inverseAffineMatrix,
  manetRafdbTrainTransform,
  normalize,
  padCrop,
  rotate,
  roundHalfEven,
  sampleErasingBox,
} from './augment';
import { clonePixels, newPixelImage, resizeBilinear, type PixelImage } from './image';

/** A w×h image whose pixel (x, y) holds (x, y, 100 + x + y·w) / 1000 so every pixel is identifiable. */
function coords(w: number, h: number): PixelImage {
  const img = newPixelImage(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      img.data[o] = x / 1000;
      img.data[o + 1] = y / 1000;
      img.data[o + 2] = (100 + x + y * w) / 1000;
    }
  }
  return img;
}

const px = (img: PixelImage, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

function marked(w: number, h: number, x: number, y: number): PixelImage {
  const img = newPixelImage(w, h);
  img.data.fill(0.2);
  img.data.set([1, 1, 1], (y * w + x) * 3);
  return img;
}

function argmaxPixel(img: PixelImage): [number, number] {
  let best = -1;
  let at: [number, number] = [-1, -1];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const v = img.data[(y * img.width + x) * 3];
      if (v > best) {
        best = v;
        at = [x, y];
      }
    }
  }
  return at;
}

describe('geometry', () => {
  test('hflip mirrors every pixel exactly (in place)', () => {
    const img = coords(7, 5);
    const out = hflip(coords(7, 5));
    for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) expect(px(out, x, y)).toEqual(px(img, 6 - x, y));
  });

  test('affine with integer translation moves a marked pixel by (tx, ty) and fills with 0', () => {
    const img = marked(10, 10, 4, 5);
    const out = affine(img, { angle: 0, translate: [3, -2], scale: 1 }, 'bilinear', 0);
    expect(argmaxPixel(out)).toEqual([7, 3]);
    expect(px(out, 7, 3)).toEqual([1, 1, 1]);
    // Columns 0..2 come from outside the input (x − 3 < 0): filled with 0. Rows 8..9 from rows 10..11.
    expect(px(out, 1, 4)).toEqual([0, 0, 0]);
    expect(px(out, 5, 9)).toEqual([0, 0, 0]);
    expect(px(out, 5, 5)[0]).toBeCloseTo(0.2, 6);
  });

  test('affine by 90° maps each pixel where the inverse matrix says (torchvision convention)', () => {
    // Centre (5, 5): m = [0, 1, 0, −1, 0, 10], so output (x, y) samples input pixel (col y, row 9 − x).
    const m = inverseAffineMatrix([5, 5], { angle: 90, translate: [0, 0], scale: 1 });
    [0, 1, 0, -1, 0, 10].forEach((v, i) => expect(m[i]).toBeCloseTo(v, 12));
    const img = coords(10, 10);
    const out = affine(img, { angle: 90, translate: [0, 0], scale: 1 }, 'bilinear');
    for (const [x, y] of [
      [0, 0],
      [2, 7],
      [9, 3],
      [5, 5],
    ]) {
      const want = px(img, y, 9 - x);
      px(out, x, y).forEach((v, k) => expect(v).toBeCloseTo(want[k], 6));
    }
  });

  test("affine with rotation, translation and scale: a marked blob lands at the inverse matrix's preimage", () => {
    const W = 41;
    const img = newPixelImage(W, W);
    // A 3×3 blob centred on pixel (12, 27): centre coordinate (12.5, 27.5) in PIL's convention.
    for (let y = 26; y <= 28; y++) for (let x = 11; x <= 13; x++) img.data.set([1, 1, 1], (y * W + x) * 3);
    const p = { angle: 23, translate: [2, -3] as [number, number], scale: 1.15 };
    const m = inverseAffineMatrix([W / 2, W / 2], p);
    // Solve m · (u, v, 1) = (12.5, 27.5) for the output point (u, v).
    const det = m[0] * m[4] - m[1] * m[3];
    const rx = 12.5 - m[2];
    const ry = 27.5 - m[5];
    const u = (m[4] * rx - m[1] * ry) / det;
    const v = (m[0] * ry - m[3] * rx) / det;
    const out = affine(img, p, 'bilinear');
    const [ax, ay] = argmaxPixel(out);
    expect(Math.abs(ax + 0.5 - u)).toBeLessThanOrEqual(1);
    expect(Math.abs(ay + 0.5 - v)).toBeLessThanOrEqual(1);
    // And the forward direction agrees with torchvision's description: rotate about the centre, scale, translate.
    const t = (23 * Math.PI) / 180; // [cos −sin; sin cos] in y-down pixel coordinates: clockwise on screen
    const fx = W / 2 + 2 + 1.15 * (Math.cos(t) * (12.5 - W / 2) - Math.sin(t) * (27.5 - W / 2));
    const fy = W / 2 - 3 + 1.15 * (Math.sin(t) * (12.5 - W / 2) + Math.cos(t) * (27.5 - W / 2));
    expect(u).toBeCloseTo(fx, 9);
    expect(v).toBeCloseTo(fy, 9);
  });

  test('affine bilinear: a half-pixel shift averages neighbours; scale 2 about the centre', () => {
    const img = coords(8, 6);
    const half = affine(img, { angle: 0, translate: [0.5, 0], scale: 1 }, 'bilinear');
    // Output (x, y) samples at input x − 0.5 → mean of columns x − 1 and x.
    for (const [x, y] of [
      [3, 2],
      [6, 4],
    ]) {
      const a = px(img, x - 1, y);
      const b = px(img, x, y);
      px(half, x, y).forEach((v, k) => expect(v).toBeCloseTo((a[k] + b[k]) / 2, 6));
    }
    const z = affine(img, { angle: 0, translate: [0, 0], scale: 2 }, 'bilinear');
    // x: (5.5 − 4)/2 + 4 = 4.75 → sample 4.25 → 0.75·col4 + 0.25·col5; y (centre 3): (3.5 − 3)/2 + 3 = 3.25 → row 2.75.
    const want0 = 0.75 * 4 + 0.25 * 5;
    const want1 = 0.25 * 2 + 0.75 * 3;
    expect(z.data[(3 * 8 + 5) * 3] * 1000).toBeCloseTo(want0, 4);
    expect(z.data[(3 * 8 + 5) * 3 + 1] * 1000).toBeCloseTo(want1, 4);
  });

  test('rotate is counter-clockwise (PIL Image.rotate): top-right corner goes to top-left', () => {
    const img = coords(10, 10);
    const out = rotate(img, 90, 'nearest');
    // Output (x, y) = input (col 9 − y, row x).
    for (const [x, y] of [
      [0, 0],
      [3, 8],
      [9, 9],
    ])
      expect(px(out, x, y)).toEqual(px(img, 9 - y, x));
  });

  test('padCrop: offset = padding is the identity; offset 0 shifts down-right by the padding with zero fill', () => {
    const img = coords(6, 5);
    expect(Array.from(padCrop(img, 2, 2, 2).data)).toEqual(Array.from(img.data));
    const out = padCrop(img, 2, 0, 0);
    expect(px(out, 1, 1)).toEqual([0, 0, 0]);
    expect(px(out, 2, 2)).toEqual(px(img, 0, 0));
    expect(px(out, 5, 4)).toEqual(px(img, 3, 2));
  });
});

describe('colour', () => {
  test('brightness scales and clips', () => {
    const img = newPixelImage(2, 1);
    img.data.set([0.2, 0.4, 0.8, 0.5, 0.6, 1]);
    adjustBrightness(img, 1.5);
    [0.3, 0.6, 1, 0.75, 0.9, 1].forEach((v, i) => expect(img.data[i]).toBeCloseTo(v, 6));
  });

  test('contrast blends with the rounded mean luma of the channels as stored', () => {
    const img = newPixelImage(2, 1);
    // luma (0.299, 0.587, 0.114)·255: pixel 0 = (255, 0, 0) → 76.245; pixel 1 = (0, 0, 255) → 29.07. Mean 52.66 → 53.
    img.data.set([1, 0, 0, 0, 0, 1]);
    adjustContrast(img, 0.5);
    const m = 53 / 255;
    [m + 0.5 * (1 - m), m * 0.5, m * 0.5, m * 0.5, m * 0.5, m + 0.5 * (1 - m)].forEach((v, i) =>
      expect(img.data[i]).toBeCloseTo(v, 6),
    );
  });

  test('normalize is (x − mean) / std per channel', () => {
    const img = newPixelImage(1, 1);
    img.data.set([0.485, 0.685, 0]);
    normalize(img, [0.485, 0.456, 0.406], [0.229, 0.229, 0.225]);
    expect(img.data[0]).toBeCloseTo(0, 6);
    expect(img.data[1]).toBeCloseTo(1, 5);
    expect(img.data[2]).toBeCloseTo(-0.406 / 0.225, 5);
  });
});

describe('random erasing', () => {
  test('boxes lie inside the image with area 2-25 % and aspect 0.3-3.3 (up to rounding)', () => {
    const rng = new Rng(3);
    let fired = 0;
    const bad: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const b = sampleErasingBox(rng, 96, 80, [0.02, 0.25], [0.3, 3.3]);
      if (!b) continue;
      fired++;
      const frac = (b.height * b.width) / (96 * 80);
      const r = b.height / b.width;
      const ok =
        b.top >= 0 &&
        b.left >= 0 &&
        b.top + b.height <= 80 &&
        b.left + b.width <= 96 &&
        b.height < 80 &&
        b.width < 96 &&
        frac > 0.02 * 0.8 &&
        frac < 0.25 * 1.2 &&
        r > 0.3 * 0.75 &&
        r < 3.3 / 0.75;
      if (!ok) bad.push(JSON.stringify(b));
    }
    expect(bad).toEqual([]);
    expect(fired).toBeGreaterThan(1900);
  });

  test('erase sets exactly the box to the value', () => {
    const img = coords(6, 5);
    erase(img, { top: 1, left: 2, height: 3, width: 2 }, -7);
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 6; x++) {
        const inside = y >= 1 && y < 4 && x >= 2 && x < 4;
        if (inside) expect(px(img, x, y)).toEqual([-7, -7, -7]);
        else expect(px(img, x, y)[0]).toBeCloseTo(x / 1000, 7);
      }
    }
  });

  test('no attempt fits → null (torchvision returns the image unchanged)', () => {
    expect(sampleErasingBox(new Rng(1), 2, 2, [0.9, 0.99], [1, 1])).toBeNull();
  });
});

describe('pipelines', () => {
  const base = () => {
    const img = coords(32, 32);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i % 97) / 97;
    return img;
  };

  test.each([
    ['esr', esrTrainTransform()],
    ['rafdb', manetRafdbTrainTransform()],
  ])('%s: same seed → same pixels, other seed → different', (_n, t) => {
    const a = applyTransform(t, base(), new Rng(11));
    const b = applyTransform(t, base(), new Rng(11));
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    let differs = false;
    for (let s = 12; s < 20 && !differs; s++) {
      const c = applyTransform(t, base(), new Rng(s));
      differs = c.data.some((v, i) => v !== a.data[i]);
    }
    expect(differs).toBe(true);
  });

  test('ESR output stays in [0, 1]; flip probability ≈ 0.5', () => {
    let flips = 0;
    const img = marked(16, 16, 1, 8);
    for (let s = 0; s < 400; s++) {
      const out = applyTransform([{ op: 'hflip', p: 0.5 }], clonePixels(img), new Rng(s));
      if (argmaxPixel(out)[0] === 14) flips++;
    }
    expect(flips).toBeGreaterThan(160);
    expect(flips).toBeLessThan(240);
    const out = applyTransform(esrTrainTransform(), base(), new Rng(5));
    expect(Math.min(...out.data)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...out.data)).toBeLessThanOrEqual(1);
  });

  test('evalTransform: identity, or ImageNet normalisation', () => {
    expect(evalTransform().ops).toEqual([]);
    const out = applyTransform(evalTransform('imagenet'), base(), new Rng(0));
    expect(out.data[0]).toBeCloseTo((0 - 0.485) / 0.229, 5);
  });

  test('roundHalfEven matches Python round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -3]);
  });
});

describe('resizeBilinear (OpenCV INTER_LINEAR)', () => {
  test('2×2 → 4×4 matches the hand-computed half-pixel-centre weights', () => {
    const raw = { data: new Uint8Array([0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]), width: 2, height: 2 };
    const out = resizeBilinear(raw, 4, 4, 1);
    const at = (x: number, y: number) => out.data[(y * 4 + x) * 3];
    // Source coordinate (d + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25 → clamp, 0.25, 0.75, clamp.
    expect(at(0, 0)).toBeCloseTo(0, 5);
    expect(at(1, 0)).toBeCloseTo(63.75, 4);
    expect(at(2, 0)).toBeCloseTo(191.25, 4);
    expect(at(3, 0)).toBeCloseTo(255, 4);
    expect(at(1, 1)).toBeCloseTo(95.625, 4);
    expect(at(3, 3)).toBeCloseTo(0, 5);
  });
});
