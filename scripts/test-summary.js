'use strict';
// Reads vitest's JSON report and prints the plain closing line CI reads: "tests: N passed, N failed".
// A run that executed no test, or skipped any, fails: a skip in CI is not a pass.
const fs = require('node:fs');
const report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const passed = report.numPassedTests;
const failed = report.numFailedTests + (report.numRuntimeErrorTestSuites || 0) + report.numFailedTestSuites;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (passed === 0) {
  console.error('no test ran');
  process.exit(1);
}
if (failed > 0 || skipped > 0) process.exit(1);
