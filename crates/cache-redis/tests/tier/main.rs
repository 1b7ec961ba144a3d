//! The Redis tier against real `redis-server` processes: the commands it
//! sends, exact round trips, expiry, pattern deletion, undecodable values,
//! outages, health without traffic, what Redis refuses, the password, and
//! the fleet's conditional writes, tombstones and load locks.
//!
//! Each test starts its own server on its own Unix socket, so they run in parallel
//! and may kill theirs. Figures the lead asked for (deletion time, PING
//! latency, latency under faults, recovery time) are printed, never
//! asserted: run with `--nocapture` to see them.

mod bus;
mod commands;
mod corrupt;
mod deletion;
mod faults;
mod fleet;
mod health;
mod refusals;
mod round_trip;
mod secrets;
mod support;
