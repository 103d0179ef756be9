#!/usr/bin/env node
// Builds the mesh-acl example engine with the AssemblyScript compiler from npm (a devDependency):
// stub runtime (bump allocator, reset per call), no imports (abort traps), a 16-page (1 MiB) memory cap.
'use strict';
/* global require, process, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS build script */
const { execFileSync } = require('node:child_process');
const { mkdirSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..', '..');
const out = process.argv[2] ?? join(root, 'dist', 'engines', 'mesh-acl.wasm');
mkdirSync(join(out, '..'), { recursive: true });
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
execFileSync(
  process.execPath,
  [
    asc,
    join(__dirname, 'assembly', 'index.ts'),
    '-o',
    out,
    '-O3',
    '--noAssert',
    '--runtime',
    'stub',
    '--use',
    'abort=engines/mesh-acl/assembly/index/abort',
    '--initialMemory',
    '1',
    '--maximumMemory',
    '16',
  ],
  { stdio: 'inherit', cwd: root },
);
process.stdout.write(`${JSON.stringify({ out })}\n`);
