/**
 * Counts the names each package's public entry points export (values and types), with the TypeScript checker.
 * `tsx scripts/count-exports.ts` prints a markdown table; entries are `src/index.ts` plus any `src/node.ts`.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const root = path.join(__dirname, '..');
const pkgs = readdirSync(path.join(root, 'packages')).sort();
const entries = pkgs.flatMap((p) =>
  ['index', 'node', 'internal']
    .map((e) => path.join(root, 'packages', p, 'src', `${e}.ts`))
    .filter(existsSync)
    .map((file) => ({ pkg: p, entry: path.basename(file, '.ts'), file })),
);
const config = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
const program = ts.createProgram(
  entries.map((e) => e.file),
  parsed.options,
);
const checker = program.getTypeChecker();
console.log('| package | entry | values | types | total |\n|---|---|---:|---:|---:|');
for (const e of entries) {
  const sf = program.getSourceFile(e.file);
  const sym = sf && checker.getSymbolAtLocation(sf);
  const names = sym ? checker.getExportsOfModule(sym) : [];
  let values = 0;
  for (const s of names) {
    const t = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
    if (t.flags & ts.SymbolFlags.Value) values++;
  }
  console.log(`| ${e.pkg} | ${e.entry} | ${values} | ${names.length - values} | ${names.length} |`);
}
