//! Partition migrations.
//!
//! [`machine`] is the seed's orchestration state machine as a pure function:
//! `step(migration, event, now) -> actions`. It does no I/O and reads no
//! clock, so every transition, including every failure edge, is a unit test,
//! and a seeded simulation can drive it through thousands of crash schedules.
//! The [`driver`] persists each new state to the metadata store *before*
//! performing the actions it returns, and feeds the results back as events;
//! a restarted coordinator re-derives the pending actions from the stored
//! state with [`machine::restart_actions`] (a relock, then the phase's work).
//! [`route`] keeps the partition's routing mode (dual-write, shadow reads,
//! copy-on-read) in step with the stored state and checks routers' shadow
//! reads before cutover.

pub mod cutover;
pub mod driver;
pub mod machine;
pub mod manager;
pub mod route;
