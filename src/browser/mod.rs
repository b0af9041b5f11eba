//! Browser mode's parts: the recording proxy every browser request goes
//! through, the certificate authority it intercepts TLS with, a DevTools
//! protocol client and the Chromium it drives.
//!
//! A browser (or yt-dlp) never reaches the network itself: it is pointed
//! at [`proxy::RecordingProxy`], which sends each request with custody's
//! own fetcher, so the wire bytes, the network policy and the digests stay
//! custody's own.

pub mod ca;
pub mod cdp;
pub mod chromium;
pub mod proxy;
pub mod step;

use std::path::PathBuf;

/// The first `name` on `PATH` that is a file.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}
