import type { Reporter, SerializedError, TestModule } from 'vitest/node';

/** Ends every run with the plain `N passed, N failed, N skipped` line that CI reads. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    for (const module of testModules) {
      let failedHere = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed' || state === 'failed' || state === 'skipped') count[state]++;
        if (state === 'failed') failedHere++;
      }
      // A file that failed to load, or whose beforeAll failed (its tests then read as skipped), is a failure.
      if (module.state() === 'failed' && failedHere === 0) count.failed++;
    }
    // An error no test caught still fails the run.
    count.failed += unhandledErrors.length;
    process.stdout.write(`\n${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped\n`);
  }
}
