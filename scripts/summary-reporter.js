/**
 * Jest reporter that ends the run with one plain line, `jest: N passed, N failed, N skipped`, which CI systems read
 * as the closing summary (jest's own "Tests: … total" line is not in that form). It is printed at process exit so
 * that it is the very last line, after jest's "Ran all test suites".
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    // Suites that failed to run (syntax errors, crashes) count as failures too.
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `jest: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`;
    process.once('exit', () => process.stderr.write(line));
  }
}
module.exports = SummaryReporter;
