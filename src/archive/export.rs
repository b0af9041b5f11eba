//! Exports: a capture's WARC as it was stored, followed by the original
//! record of every revisit in it and custody's proof record, so what
//! leaves custody stands alone and can be verified offline.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{io_at, Archive, ArchiveError};
use crate::index::Hit;
use crate::model::{CaptureId, Sha256, WarcRef};
use crate::warc;

impl Archive {
    /// Writes a capture's WARC to `dest`: the stored file, checked against
    /// its digest, followed by the original response record of every
    /// revisit in it (each checked against its digests), so the export
    /// stands alone. `dest` appears only when complete. Recorded as an
    /// `exported` custody event.
    pub async fn export_warc(&self, id: &CaptureId, dest: &Path) -> Result<Exported, ArchiveError> {
        let exported = self.write_export(id, dest).await?;
        let detail = serde_json::json!({
            "format": "warc",
            "path": dest.display().to_string(),
            "sha256": exported.sha256,
            "stored_warc_sha256": exported.stored.sha256,
            "originals_included": exported.originals.len(),
        });
        self.event(id, "exported", detail).await;
        Ok(exported)
    }

    /// [`Archive::export_warc`] without the custody event (a WACZ export
    /// records its own).
    pub async fn write_export(
        &self,
        id: &CaptureId,
        dest: &Path,
    ) -> Result<Exported, ArchiveError> {
        let capture = self.index.capture(id).await?.ok_or_else(|| {
            ArchiveError::NotFound(format!(
                "no capture {id}; list them with `custody captures`"
            ))
        })?;
        let Some(warc) = capture.warc else {
            return Err(ArchiveError::NotFound(format!(
                "capture {id} failed and has no WARC ({})",
                capture.error.unwrap_or_default()
            )));
        };
        let mut originals: Vec<Hit> = Vec::new();
        for record in self.index.records(id).await? {
            if record.warc_type != "revisit" {
                continue;
            }
            let original = self.original_in(id, &record).await?;
            if originals
                .iter()
                .all(|o| o.record.record_id != original.record.record_id)
            {
                originals.push(original);
            }
        }
        let (file, tmp_path) = temp_beside(dest)?;
        let mut out =
            HashingWriter::new(tokio::io::BufWriter::new(tokio::fs::File::from_std(file)));
        self.store.copy_to(&warc.key, warc.sha256, &mut out).await?;
        for o in &originals {
            // Fetched once, its digests checked, then appended as fetched.
            let (_, _, raw) = self.read_record(o, false).await?;
            let mut raw = tokio::fs::File::from_std(raw);
            tokio::io::copy(&mut raw, &mut out)
                .await
                .map_err(io_at(dest))?;
        }
        // Last, custody's proofs: the capture's inclusion in a signed
        // checkpoint and the timestamps, so the file can be verified
        // offline (`custody verify FILE`).
        let proof = self.proof_record(id, &warc).await?;
        {
            use tokio::io::AsyncWriteExt;
            out.write_all(&proof).await.map_err(io_at(dest))?;
            out.flush().await.map_err(io_at(dest))?;
        }
        let (out, sha256, bytes) = out.finish();
        let file = out.into_inner().into_std().await;
        file.sync_all().map_err(io_at(dest))?;
        tmp_path.persist(dest).map_err(|e| ArchiveError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(Exported {
            sha256,
            bytes,
            stored: warc,
            originals,
        })
    }

    /// The `metadata` record that ends an export: the stored WARC's digest
    /// and size, the capture's inclusion proof with its signed checkpoint
    /// and the log's public key, and the timestamp tokens (DER, base64) of
    /// that checkpoint and of the capture.
    async fn proof_record(&self, id: &CaptureId, warc: &WarcRef) -> Result<Vec<u8>, ArchiveError> {
        let body = serde_json::to_vec_pretty(&self.proof(id, warc).await?)
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        Ok(warc::records::json_metadata_record(
            &format!("urn:custody:proof:{id}"),
            &Utc::now(),
            &body,
        )?)
    }

    /// custody's proof for a capture: the stored WARC's digest and size,
    /// its inclusion proof with the signed checkpoint and the log's public
    /// key, and the timestamp tokens (DER, base64) of that checkpoint and
    /// of the capture.
    pub async fn proof(
        &self,
        id: &CaptureId,
        warc: &WarcRef,
    ) -> Result<serde_json::Value, ArchiveError> {
        let tlog_err = |e: crate::tlog::TlogError| ArchiveError::Internal(e.to_string());
        let key = crate::tlog::LogKey::for_config(&self.config).map_err(tlog_err)?;
        let inclusion = crate::tlog::capture_inclusion(
            self.index.as_ref(),
            &self.store,
            &key,
            &self.config.timestamps.tsa_urls,
            id,
        )
        .await
        .map_err(tlog_err)?;
        let mut timestamps = self
            .index
            .timestamp_tokens("checkpoint", &inclusion.tree_size.to_string())
            .await?;
        timestamps.extend(self.index.timestamp_tokens("capture", id.as_str()).await?);
        Ok(json!({
            "custody_proof": 1,
            "capture_id": id,
            "warc_sha256": warc.sha256.hex(),
            "warc_bytes": warc.bytes,
            "inclusion": inclusion,
            "timestamps": timestamps,
        }))
    }
}

/// A temporary file in `dest`'s directory, to be persisted as `dest` once
/// complete (so `dest` never holds a partial export).
pub fn temp_beside(dest: &Path) -> Result<(std::fs::File, tempfile::TempPath), ArchiveError> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".custody-export-")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    Ok(tmp.into_parts())
}

/// What `export_warc` wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub sha256: Sha256,
    pub bytes: u64,
    /// The capture's stored WARC, which the export begins with.
    pub stored: WarcRef,
    /// Original records of revisits appended after it, in order.
    pub originals: Vec<Hit>,
}

/// An async writer that hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, Sha256, u64) {
        (self.inner, Sha256::from_hasher(self.hasher), self.bytes)
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            let n = *n;
            sha2::Digest::update(&mut self.hasher, &buf[..n]);
            self.bytes += n as u64;
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
