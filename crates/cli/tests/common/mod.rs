//! Pieces the integration tests share: a real `evenkeel up` child process
//! ([`server`]), a checked client load that tolerates the process being
//! killed under it ([`load`]), admin API helpers ([`admin`]), and helpers
//! for a cluster running in the test's own process ([`cluster`]).
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod admin;
pub mod cluster;
pub mod load;
pub mod server;
