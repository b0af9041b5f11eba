//! Browser mode's parts: the recording proxy every browser request goes
//! through, and the certificate authority it intercepts TLS with.
//!
//! A browser (or yt-dlp) never reaches the network itself: it is pointed
//! at [`proxy::RecordingProxy`], which sends each request with custody's
//! own fetcher, so the wire bytes, the network policy and the digests stay
//! custody's own.

pub mod ca;
pub mod proxy;
