/** Free TCP ports on loopback for tests that must know peer addresses before binding. Import-safe. */
export { freePorts } from '../../src/bench/ports.js';
