// Spec file 4 of the runner suite: jest and vitest give each file its own worker.
require('./suite.js')(4)
