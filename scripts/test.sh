#!/usr/bin/env bash
# `npm test`: every check the project has, in the order that fails fastest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint: core and tests (clippy -D warnings, with the fault-injection tests)"
cargo clippy --all-targets --features fault-injection -- -D warnings
step "lint: Node binding (clippy --features napi -D warnings)"
cargo clippy --features napi -- -D warnings

step "Rust tests (core, no Node)"
cargo test
step "Rust fault-injection tests (I/O errors at every build step, panics)"
cargo test --features fault-injection --test faults

step "build the addon (release; incremental)"
npm run build --silent
step "build the fault-injection addon (for __test__/panics.test.js)"
npm run build:faults --silent

step "contract copy is current"
shared=../shared/contract/pattern-cache.d.ts
if [ -f "$shared" ]; then
  diff -u "$shared" __test__/contract.d.ts || { echo "__test__/contract.d.ts differs from $shared: copy it again"; exit 1; }
else
  echo "no $shared beside this checkout; using the copy in __test__/"
fi

step "type check (index.d.ts against the contract; the tests)"
npx --no-install tsc -p __test__/tsconfig.json

step "Node tests on $(node --version)"
node --test --test-concurrency=1 --test-timeout=120000 __test__/*.test.js
