//! Pieces the integration tests share: a real `evenkeel up` child process
//! ([`server`]), a checked client load that tolerates the process being
//! killed under it ([`load`]), and admin API helpers ([`admin`]).
//!
//! Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod admin;
pub mod load;
pub mod server;
