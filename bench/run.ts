/**
 * `pnpm bench [name...]`: runs every `bench/*.bench.ts` (or the named ones) in sequence. Benchmarks print figures
 * and ratios; they never assert timings. Each module exports `run(args: string[]): Promise<void>`.
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
  const all = readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => f.replace(/\.bench\.ts$/, ''))
    .sort();
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) throw new Error(`Unknown benchmark ${unknown.join(', ')}. Valid: ${all.join(', ')}.`);
  for (const name of wanted.length ? wanted : all) {
    console.log(`\n=== bench: ${name} ===`);
    const mod = await import(path.join(__dirname, `${name}.bench.ts`));
    await mod.run(flags);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
