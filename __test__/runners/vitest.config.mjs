// The runner suite's vitest config (see __test__/runners.test.js).
export default { test: { include: ['*.spec.js'], globals: true } }
