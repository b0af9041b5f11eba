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

/// The tool to run: `configured` (a setting, `key`), which must be a file,
/// or else the first of `names` on `PATH`; `install` says how to get it.
pub fn locate_tool(
    configured: Option<&std::path::Path>,
    key: &str,
    names: &[&str],
    install: &str,
) -> Result<PathBuf, String> {
    if let Some(p) = configured {
        return match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(p.to_path_buf()),
            _ => Err(format!(
                "{key} {} is not a file; {install} or fix the path",
                p.display()
            )),
        };
    }
    names.iter().find_map(|name| on_path(name)).ok_or_else(|| {
        format!(
            "no {} on PATH; {install} or set {key}",
            names.first().copied().unwrap_or("tool")
        )
    })
}

/// The first `name` on `PATH` that is a file.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}
