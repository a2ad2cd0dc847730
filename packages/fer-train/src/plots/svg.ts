/**
 * Dependency-free SVG charts (line chart, confusion-matrix heat map). PNG copies are rendered by sharp (librsvg),
 * so no browser or native canvas is needed.
 */

export interface Series {
  label: string;
  /** y per x; NaN or null leaves a gap. */
  ys: (number | null)[];
  xs?: number[];
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Fixed y range; default: data range (with 0 included when all values are positive losses). */
  yRange?: [number, number];
  /** Vertical separators with labels (e.g. stage boundaries). */
  markers?: { x: number; label: string }[];
}

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#000000',
];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const fmt = (v: number) =>
  Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4)));

/** A line chart as an SVG document. */
export function lineChartSvg(series: Series[], o: LineChartOptions): string {
  const W = o.width ?? 960;
  const H = o.height ?? 540;
  const m = { l: 70, r: 200, t: 40, b: 50 };
  const pts = series.map((s) => s.ys.map((y, i) => [s.xs?.[i] ?? i, y] as [number, number | null]));
  const xs = pts.flat().map((p) => p[0]);
  const ys = pts
    .flat()
    .map((p) => p[1])
    .filter((y): y is number => y !== null && Number.isFinite(y));
  const [y0, yTop] = o.yRange ?? [Math.min(0, ...ys), Math.max(...ys, 1e-12)];
  const y1 = yTop > y0 ? yTop : y0 + 1;
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, x0 + 1);
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="16">${escapeXml(o.title)}</text>`);
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 10)) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const mk of o.markers ?? []) {
    parts.push(
      `<line x1="${px(mk.x)}" x2="${px(mk.x)}" y1="${m.t}" y2="${H - m.b}" stroke="#999" stroke-dasharray="2,3"/>`,
    );
    parts.push(`<text x="${px(mk.x) + 3}" y="${m.t + 12}" fill="#666">${escapeXml(mk.label)}</text>`);
  }
  parts.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`,
  );
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  parts.push(
    `<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length];
    let d = '';
    let pen = false;
    for (const [x, y] of pts[k]) {
      if (y === null || !Number.isFinite(y)) {
        pen = false;
        continue;
      }
      const yy = Math.min(Math.max(y, y0), y1);
      d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)},${py(yy).toFixed(1)}`;
      pen = true;
    }
    if (d)
      parts.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
      );
    if (pts[k].filter((p) => p[1] !== null).length === 1) {
      const [x, y] = pts[k].find((p) => p[1] !== null)!;
      parts.push(`<circle cx="${px(x)}" cy="${py(y!)}" r="3" fill="${color}"/>`);
    }
    const ly = m.t + 14 + k * 18;
    parts.push(
      `<line x1="${W - m.r + 12}" x2="${W - m.r + 36}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
    );
    parts.push(`<text x="${W - m.r + 42}" y="${ly}">${escapeXml(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * A confusion matrix (rows = true class, columns = predicted) as an SVG heat map with counts and row-normalised
 * shading.
 */
export function confusionMatrixSvg(matrix: number[][], labels: readonly string[], title = 'Confusion matrix'): string {
  const k = matrix.length;
  const cell = 64;
  const m = { l: 110, t: 60, r: 20, b: 100 };
  const W = m.l + k * cell + m.r;
  const H = m.t + k * cell + m.b;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`);
  for (let t = 0; t < k; t++) {
    const rowSum = matrix[t].reduce((a, b) => a + b, 0);
    for (let p = 0; p < k; p++) {
      const frac = rowSum > 0 ? matrix[t][p] / rowSum : 0;
      const shade = Math.round(255 - frac * 200);
      const x = m.l + p * cell;
      const y = m.t + t * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${shade},${shade},255)" stroke="#fff"/>`,
      );
      parts.push(
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${frac > 0.6 ? '#fff' : '#000'}">${matrix[t][p]}</text>`,
      );
    }
    parts.push(
      `<text x="${m.l - 6}" y="${m.t + t * cell + cell / 2 + 4}" text-anchor="end">${escapeXml(labels[t] ?? String(t))}</text>`,
    );
    parts.push(
      `<text transform="translate(${m.l + t * cell + cell / 2} ${m.t + k * cell + 8}) rotate(45)" text-anchor="start">${escapeXml(labels[t] ?? String(t))}</text>`,
    );
  }
  parts.push(`<text x="${m.l + (k * cell) / 2}" y="${H - 8}" text-anchor="middle">predicted</text>`);
  parts.push(`<text transform="translate(16 ${m.t + (k * cell) / 2}) rotate(-90)" text-anchor="middle">true</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
