/** Drawing a face crop with one branch's spatial attention over it. */

/** A perceptually ordered colour map (dark blue → green → yellow), 0..1 → RGB. */
function colour(t: number): [number, number, number] {
  const stops: [number, number, number][] = [
    [48, 18, 59],
    [40, 120, 220],
    [30, 200, 150],
    [170, 230, 50],
    [250, 250, 30],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))) as [
    number,
    number,
    number,
  ];
}

/**
 * Draws `face` scaled to `size` and the attention map [h][w] over it, upsampled bilinearly by the canvas, min-max
 * normalised per map (the maps are sigmoid outputs whose range differs by branch; the caption shows it).
 */
export function drawAttention(
  target: HTMLCanvasElement,
  face: HTMLCanvasElement,
  attention: number[][],
  size = 144,
  alpha = 0.55,
): { min: number; max: number } {
  target.width = size;
  target.height = size;
  const ctx = target.getContext('2d')!;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(face, 0, 0, size, size);
  const h = attention.length;
  const w = attention[0]?.length ?? 0;
  const flat = attention.flat();
  const min = Math.min(...flat);
  const max = Math.max(...flat);
  if (h === 0 || w === 0) return { min, max };
  const small = document.createElement('canvas');
  small.width = w;
  small.height = h;
  const sctx = small.getContext('2d')!;
  const img = sctx.createImageData(w, h);
  const span = max - min || 1;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = colour((attention[y][x] - min) / span);
      const o = (y * w + x) * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = Math.round(alpha * 255);
    }
  sctx.putImageData(img, 0, 0);
  ctx.drawImage(small, 0, 0, size, size);
  return { min, max };
}
