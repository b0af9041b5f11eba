//! custody: a preservation service for web evidence.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

pub mod access;
pub mod archive;
pub mod browser;
pub mod capture;
pub mod cdxj;
pub mod charset;
pub mod config;
pub mod daemon;
pub mod diff;
pub mod failpoint;
pub mod http;
pub mod import;
pub mod index;
pub mod integrity;
pub mod media;
pub mod model;
pub mod pipeline;
pub mod provenance;
pub mod rebuild;
pub mod recovery;
pub mod scheduler;
pub mod search;
pub mod store;
pub mod tlog;
pub mod wacz;
pub mod warc;
