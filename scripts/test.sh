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

step "contract copies are current (__test__/contract/ mirrors ../shared/contract/)"
shared=../shared/contract
if [ -d "$shared" ]; then
  # Every copy kept here must equal its original; additions are copied when
  # their issue lands, so an original without a copy is not an error.
  (cd __test__/contract && find . -name '*.d.ts' | sort) | while read -r f; do
    diff -u "$shared/$f" "__test__/contract/$f" || { echo "__test__/contract/$f differs from $shared/$f: copy it again"; exit 1; }
  done
  echo "$(cd __test__/contract && find . -name '*.d.ts' | wc -l) contract files match $shared"
else
  echo "no $shared beside this checkout; using the copies in __test__/contract/"
fi

step "type check (index.d.ts against the contract; the tests)"
npx --no-install tsc -p __test__/tsconfig.json

step "Node tests on $(node --version)"
node --test --test-concurrency=1 --test-timeout=120000 __test__/*.test.js
