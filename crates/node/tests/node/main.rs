//! The node's integration tests, one binary: each module starts real nodes
//! on loopback and talks gRPC to them.
//!
//! Failpoints are process-global: tests that configure them hold a
//! `fail::FailScenario` (which serializes them and clears every failpoint
//! afterwards) and use node ids no other test uses.

mod durability;
mod failpoints;
mod fencing;
mod gc;
mod lane;
mod local;
mod membership;
mod mirror;
mod readiness;
mod support;
