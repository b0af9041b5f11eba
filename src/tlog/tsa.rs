//! RFC 3161 trusted timestamps.
//!
//! Requests are DER `TimeStampReq`s (SHA-256 imprint, a random nonce,
//! `certReq` set) posted to each configured TSA. Responses are checked
//! before they are kept: the PKI status here, then imprint, nonce,
//! signature, the TSA certificate's critical `timeStamping` extended key
//! usage and its chain to the configured roots by `openssl ts -verify`
//! against the request (the same check anyone can repeat offline). The
//! whole `TimeStampResp` is stored as DER. Nothing waits on a TSA: requests
//! are queued in the index and retried with backoff.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;

use crate::config::TimestampSettings;
use crate::index::LogIndex;
use crate::model::{Sha256, TimestampToken};

/// Why a timestamp could not be obtained or does not check.
#[derive(Debug, thiserror::Error)]
pub enum TsaError {
    #[error("the TSA refused the request (PKIStatus {0})")]
    Refused(u32),
    #[error("the reply is not a TimeStampResp")]
    NotAResponse,
    #[error("the stored token is not base64")]
    NotBase64,
    #[error("no timestamps.roots configured to check TSA certificates against")]
    NoRoots,
    #[error("cannot read {path}: {source}")]
    Roots {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run openssl to check timestamps ({0}); install the openssl package")]
    NoOpenssl(std::io::Error),
    /// The token does not verify (openssl's own words).
    #[error("{0}")]
    Rejected(String),
    /// custody's own scratch space failed, not the token.
    #[error("cannot write the scratch files to check a timestamp: {0}")]
    Scratch(std::io::Error),
    #[error("TSA {url} unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("TSA {url} answered HTTP {status}")]
    Http { url: String, status: u16 },
}

impl TsaError {
    /// The failure is custody's own (no openssl, no scratch space), so it
    /// says nothing about the token.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            TsaError::NoOpenssl(_)
                | TsaError::Scratch(_)
                | TsaError::Roots { .. }
                | TsaError::NoRoots
        )
    }
}

const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A DER `TimeStampReq` for `imprint` with `nonce`, asking for the
/// TSA's certificate.
pub fn request_der(imprint: &Sha256, nonce: &[u8; 8]) -> Vec<u8> {
    let algorithm = tlv(0x30, &[tlv(0x06, SHA256_OID), vec![0x05, 0x00]].concat());
    let message_imprint = tlv(0x30, &[algorithm, tlv(0x04, imprint.as_bytes())].concat());
    // A positive INTEGER: a leading zero when the high bit is set.
    let mut n = nonce.to_vec();
    while n.len() > 1 && n[0] == 0 && n[1] & 0x80 == 0 {
        n.remove(0);
    }
    if n[0] & 0x80 != 0 {
        n.insert(0, 0);
    }
    let body = [
        tlv(0x02, &[1]),
        message_imprint,
        tlv(0x02, &n),
        vec![0x01, 0x01, 0xff],
    ]
    .concat();
    tlv(0x30, &body)
}

/// One DER element: tag, content, rest.
fn read_tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let k = (first & 0x7f) as usize;
        if k == 0 || k > 4 || rest.len() < k {
            return None;
        }
        let len = rest[..k].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[k..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The `PKIStatus` of a `TimeStampResp` (0 granted, 1 granted with mods).
pub fn response_status(resp: &[u8]) -> Option<u32> {
    let (0x30, body, _) = read_tlv(resp)? else {
        return None;
    };
    let (0x30, status_info, _) = read_tlv(body)? else {
        return None;
    };
    let (0x02, status, _) = read_tlv(status_info)? else {
        return None;
    };
    Some(status.iter().fold(0u32, |a, b| (a << 8) | *b as u32))
}

/// The roots as one PEM file for openssl.
fn roots_file(roots: &[PathBuf], dir: &Path) -> Result<PathBuf, TsaError> {
    if roots.is_empty() {
        return Err(TsaError::NoRoots);
    }
    let mut pem = Vec::new();
    for r in roots {
        pem.extend(std::fs::read(r).map_err(|source| TsaError::Roots {
            path: r.clone(),
            source,
        })?);
        pem.push(b'\n');
    }
    let path = dir.join("roots.pem");
    std::fs::write(&path, pem).map_err(TsaError::Scratch)?;
    Ok(path)
}

fn openssl(args: &[&std::ffi::OsStr]) -> Result<String, TsaError> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(TsaError::NoOpenssl)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && !text.contains("FAILED") {
        Ok(text)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("openssl ts failed");
        Err(TsaError::Rejected(
            format!("{} {}", text.trim(), first.trim())
                .trim()
                .to_string(),
        ))
    }
}

/// Checks a response against its request (status, imprint, nonce,
/// signature, EKU, chain) and returns the TSA's time.
/// `scratch` is where the files `openssl ts` reads are written (the
/// archive's scratch directory: the system's may be read-only).
pub fn check_response(
    request: &[u8],
    response: &[u8],
    roots: &[PathBuf],
    scratch: &Path,
) -> Result<Option<String>, TsaError> {
    match response_status(response) {
        Some(0 | 1) => {}
        Some(s) => return Err(TsaError::Refused(s)),
        None => return Err(TsaError::NotAResponse),
    }
    let dir = tempfile::tempdir_in(scratch).map_err(TsaError::Scratch)?;
    let (req, resp) = (dir.path().join("req.tsq"), dir.path().join("resp.tsr"));
    std::fs::write(&req, request).map_err(TsaError::Scratch)?;
    std::fs::write(&resp, response).map_err(TsaError::Scratch)?;
    let roots = roots_file(roots, dir.path())?;
    openssl(&[
        "ts".as_ref(),
        "-verify".as_ref(),
        "-queryfile".as_ref(),
        req.as_os_str(),
        "-in".as_ref(),
        resp.as_os_str(),
        "-CAfile".as_ref(),
        roots.as_os_str(),
    ])?;
    Ok(gen_time(&resp))
}

fn gen_time(resp: &Path) -> Option<String> {
    let text = openssl(&[
        "ts".as_ref(),
        "-reply".as_ref(),
        "-in".as_ref(),
        resp.as_os_str(),
        "-text".as_ref(),
    ])
    .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Time stamp: "))
        .map(|t| rfc3339_gen_time(t.trim()))
}

/// A token's `genTime` as RFC 3339 UTC (`2016-11-29T10:04:00Z`, with the
/// fraction the TSA gave), from the form `openssl ts -reply -text` prints
/// (`Nov 29 10:04:00 2016 GMT`, `Nov 29 10:04:00.123 2016 GMT`). A stored
/// value already in RFC 3339 (or one neither form) is returned as it is.
pub fn rfc3339_gen_time(openssl: &str) -> String {
    let squeezed = openssl.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(rest) = squeezed.strip_suffix(" GMT") else {
        return openssl.to_string();
    };
    match chrono::NaiveDateTime::parse_from_str(rest, "%b %d %H:%M:%S%.f %Y") {
        Ok(t) => t
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Err(_) => openssl.to_string(),
    }
}

/// Checks a stored token offline: it timestamps `imprint` and chains to
/// `roots` (`openssl ts` reads it from a file made in `scratch`).
pub fn verify_token(
    token: &TimestampToken,
    roots: &[PathBuf],
    scratch: &Path,
) -> Result<(), TsaError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(&token.token_der)
        .map_err(|_| TsaError::NotBase64)?;
    let dir = tempfile::tempdir_in(scratch).map_err(TsaError::Scratch)?;
    let resp = dir.path().join("token.tsr");
    std::fs::write(&resp, der).map_err(TsaError::Scratch)?;
    let roots = roots_file(roots, dir.path())?;
    let digest = token.imprint.hex();
    openssl(&[
        "ts".as_ref(),
        "-verify".as_ref(),
        "-digest".as_ref(),
        digest.as_ref(),
        "-in".as_ref(),
        resp.as_os_str(),
        "-CAfile".as_ref(),
        roots.as_os_str(),
    ])
    .map(|_| ())
}

/// Works through the timestamp requests that are due: each is sent, the
/// reply checked and stored; a failure is retried later (30 s, doubling, at
/// most an hour). Returns (stored, failed).
/// Replies are checked with files in `scratch`.
pub async fn process_due(
    index: &dyn LogIndex,
    settings: &TimestampSettings,
    scratch: &Path,
) -> (u32, u32) {
    let due = match index.due_timestamps(Utc::now(), 20).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading due timestamp requests failed");
            return (0, 0);
        }
    };
    // reqwest's TLS (for https TSAs) runs on the process-wide rustls
    // provider; custody uses ring. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for TSAs");
            return (0, 0);
        }
    };
    let (mut stored, mut failed) = (0, 0);
    for r in due {
        let nonce: [u8; 8] = rand::random();
        let request = request_der(&r.imprint, &nonce);
        let result = async {
            let reply = client
                .post(&r.tsa_url)
                .header("Content-Type", "application/timestamp-query")
                .body(request.clone())
                .send()
                .await
                .map_err(|e| TsaError::Unreachable {
                    url: r.tsa_url.clone(),
                    detail: e.to_string(),
                })?;
            if !reply.status().is_success() {
                return Err(TsaError::Http {
                    url: r.tsa_url.clone(),
                    status: reply.status().as_u16(),
                });
            }
            let body = reply
                .bytes()
                .await
                .map_err(|e| TsaError::Unreachable {
                    url: r.tsa_url.clone(),
                    detail: e.to_string(),
                })?
                .to_vec();
            let roots = settings.roots.clone();
            let req = request.clone();
            let scratch = scratch.to_path_buf();
            let checked = tokio::task::spawn_blocking(move || {
                check_response(&req, &body, &roots, &scratch).map(|t| (t, body))
            })
            .await
            .map_err(|e| TsaError::Rejected(format!("the check did not finish: {e}")))?;
            checked
        }
        .await;
        match result {
            Ok((gen_time, body)) => {
                let token = TimestampToken {
                    subject_kind: r.subject_kind.clone(),
                    subject_id: r.subject_id.clone(),
                    imprint: r.imprint,
                    tsa_url: r.tsa_url.clone(),
                    token_der: base64::engine::general_purpose::STANDARD.encode(body),
                    gen_time,
                    received_at: Utc::now(),
                };
                match index.timestamp_received(r.id, &token).await {
                    Ok(()) => stored += 1,
                    Err(e) => tracing::error!(error = %e, "storing a timestamp token failed"),
                }
            }
            Err(e) => {
                failed += 1;
                let wait = 30u64.saturating_mul(1 << r.attempts.min(7)).min(3600);
                tracing::warn!(tsa = %r.tsa_url, subject = %r.subject_id, error = %e, retry_secs = wait, "timestamp request failed");
                let next = Utc::now() + chrono::Duration::seconds(wait as i64);
                if let Err(e) = index.timestamp_failed(r.id, &e.to_string(), next).await {
                    tracing::error!(error = %e, "recording a failed timestamp request failed");
                }
            }
        }
    }
    (stored, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_time_is_stored_in_rfc_3339() {
        assert_eq!(
            rfc3339_gen_time("Nov 29 10:04:00 2016 GMT"),
            "2016-11-29T10:04:00Z"
        );
        assert_eq!(
            rfc3339_gen_time("Dec  1 17:33:27.250 2026 GMT"),
            "2026-12-01T17:33:27.250Z"
        );
        assert_eq!(
            rfc3339_gen_time("2016-11-29T10:04:00Z"),
            "2016-11-29T10:04:00Z"
        );
    }
}
