/** Minimal RFC 4180 CSV parsing (quoted fields with commas and doubled quotes), enough for the label files. */

/** Splits CSV text into rows of fields. Blank lines are dropped; `\r\n` and `\n` both end a row. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let end = text.indexOf('\n', i);
    if (end < 0) end = n;
    let line = text.slice(i, end);
    // A quoted field may contain a newline: extend the line until the quotes balance.
    while (countQuotes(line) % 2 === 1 && end < n) {
      const next = text.indexOf('\n', end + 1);
      const stop = next < 0 ? n : next;
      line = text.slice(i, stop);
      end = stop;
    }
    i = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!line) continue;
    rows.push(line.includes('"') ? splitQuoted(line) : line.split(','));
  }
  return rows;
}

function countQuotes(s: string): number {
  let c = 0;
  for (let k = s.indexOf('"'); k >= 0; k = s.indexOf('"', k + 1)) c++;
  return c;
}

function splitQuoted(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let k = 0; k < line.length; k++) {
    const ch = line[k];
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (line[k + 1] === '"') {
        field += '"';
        k++;
      } else quoted = false;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}
