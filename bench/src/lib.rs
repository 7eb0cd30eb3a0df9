//! Benchmarks for route53-agent, run by `scripts/bench` (see BENCHMARKS.md).
//!
//! - [`sim`] boots a simulated fleet against Route 53's token buckets in
//!   virtual time, with the agent's own backoff and jitter deciding every
//!   wait; `fleet-sim` runs its scenarios and draws the plots.
//! - `agent-bench` times the built agent process itself on this machine:
//!   start-up, following an address change, SIGTERM, idle cost, the aws CLI
//!   beside it, and 50 real agents through a throttling proxy.

pub mod plot;
pub mod sim;
