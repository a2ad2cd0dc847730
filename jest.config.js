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
  reporters: ['default', '<rootDir>/scripts/summary-reporter.js'],
};
