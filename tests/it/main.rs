//! Integration tests, built as one binary (as ripgrep does). Tests that need
//! something outside the process (the Python reference tools) live behind
//! the `interop` feature, which the README's test command turns on.

// Tests report what they measured, and check files they made.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::disallowed_methods)]

mod app;
mod attacks;
mod bench;
#[cfg(feature = "interop")]
mod browser;
mod capture;
#[cfg(feature = "interop")]
mod chromium;
mod cli;
#[cfg(feature = "interop")]
mod contract;
mod daemon;
#[cfg(feature = "interop")]
mod deploy;
mod fidelity;
mod import;
mod index_conformance;
mod integrity;
#[cfg(feature = "interop")]
mod interop;
#[cfg(feature = "interop")]
mod media;
mod provenance;
mod proxy;
mod readme;
mod site;
mod store_conformance;
mod tidy;
mod tlog;
mod tsa;
mod warc_reader;
mod web;
