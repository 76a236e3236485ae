// Spec file 2 of the runner suite: jest and vitest give each file its own worker.
require('./suite.js')(2)
