/** Tests run from TypeScript sources: workspace packages map to their src, so no build is needed. */
const path = require('node:path');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/examples'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  moduleNameMapper: {
    '^(fer-[a-z-]+)$': path.join(__dirname, 'packages/$1/src/index.ts'),
    // Subpath entries: fer-core/node, fer-models-esr/internal, fer-datasets/image, …
    '^(fer-[a-z-]+)/(node|internal|image)$': path.join(__dirname, 'packages/$1/src/$2.ts'),
  },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // Gradient and end-to-end tests on wasm take seconds to minutes on 2 cores.
  testTimeout: 600000,
  maxWorkers: 2,
  // Jest asks each worker to exit at the end and reports "failed to exit gracefully" after 500 ms. Workers that ran
  // the MA-Net or native suites hold GBs (wasm heaps, oneDNN buffers): their teardown alone takes longer than that
  // on a busy 2-core machine, with no handle left open (checked with async_hooks). A real leak still shows after 5 s.
  workerGracefulExitTimeout: 5000,
  reporters: ['default', '<rootDir>/scripts/summary-reporter.js'],
};
