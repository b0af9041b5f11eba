//! Content-addressed, write-once object storage.
//!
//! Objects live behind `object_store`, chosen once from a URL: `file://PATH`
//! or `s3://bucket/prefix` (endpoint and credentials from the `AWS_*`
//! variables). S3 stores that ignore `If-None-Match` (Garage) need nothing
//! more: write-once rests on content-addressed keys, a head-before-put, and
//! the index's unique constraint. A WARC's key is
//! `warc/<first two hex>/<sha256>.warc.gz`, computed before the first byte is
//! written. An existing object is never overwritten: a put of a key that is
//! already present only checks that the present bytes hash to the key. Every
//! put is verified afterwards by size and by re-reading and hashing, and
//! every read through [`Store::copy_to`] is hashed again, so a corrupt object
//! is an error, never a silent copy. Local writes are fsync'd (file and
//! directories) before a put returns.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::model::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?} is not valid: use file:///absolute/path, file://relative/path or s3://bucket/prefix")]
    BadUrl(String),
    #[error("store URL scheme {0:?} is not supported; use file:// or s3://")]
    Unsupported(String),
    #[error("object {0} is not in the store")]
    NotFound(String),
    #[error("object {key} is corrupt: its content hashes to {actual}, not {expected}; run `custody audit`")]
    Corrupt {
        key: String,
        expected: Sha256,
        actual: Sha256,
    },
    #[error("object {key} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("storage error on {key}: {source}")]
    Backend {
        key: String,
        source: object_store::Error,
    },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The key of a WARC file with the given digest.
pub fn warc_key(sha256: &Sha256) -> String {
    let hex = sha256.hex();
    format!("warc/{}/{hex}.warc.gz", &hex[..2])
}

/// The key of an imported file as received, with the given digest; `ext`
/// is its kind (`warc`, `warc.gz`, `wacz`).
pub fn import_key(sha256: &Sha256, ext: &str) -> String {
    let hex = sha256.hex();
    format!("import/{}/{hex}.{ext}", &hex[..2])
}

/// What the store says about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    pub e_tag: Option<String>,
}

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    /// The object was already there (same content); nothing was written.
    pub already_present: bool,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: String,
    /// Re-read and hash every object after writing it (local disks); remote
    /// stores check the acknowledged size instead (DESIGN.md, invariant 2).
    reread_after_put: bool,
    /// The directory of a `file://` store, where a finished spool file on
    /// the same filesystem is linked into place instead of copied.
    local_root: Option<PathBuf>,
    /// Link finished files into place rather than copy them (the primary
    /// store; never a replica, which must not share the primary's inode).
    link_puts: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

const PART_SIZE: usize = 8 * 1024 * 1024;

/// SHA-256 and length of a file, read in 1 MiB pieces.
pub fn hash_file(path: &Path) -> std::io::Result<(Sha256, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Sha256::from_hasher(hasher), total))
}

impl Store {
    /// Opens the store a URL names. Creates a local directory if needed.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        match scheme {
            "file" => {
                if rest.is_empty() {
                    return Err(StoreError::BadUrl(url.to_string()));
                }
                let dir = PathBuf::from(rest);
                std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|source| StoreError::Backend {
                        key: String::new(),
                        source,
                    })?
                    .with_fsync(true);
                Ok(Store {
                    inner: Arc::new(fs),
                    url: url.to_string(),
                    reread_after_put: true,
                    local_root: Some(dir),
                    link_puts: true,
                })
            }
            "s3" => {
                // s3://bucket/prefix; endpoint, region and credentials come
                // from the standard AWS_* variables.
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(StoreError::BadUrl(url.to_string()));
                }
                // reqwest's TLS runs on rustls with the process-wide provider;
                // custody uses ring (no C build). Installing twice is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|source| StoreError::Backend {
                        key: String::new(),
                        source,
                    })?;
                let prefix = prefix.trim_matches('/');
                let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
                };
                Ok(Store {
                    inner,
                    url: url.to_string(),
                    reread_after_put: false,
                    local_root: None,
                    link_puts: false,
                })
            }
            other => Err(StoreError::Unsupported(other.to_string())),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn backend(key: &str) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        move |source| match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound(key.to_string()),
            source => StoreError::Backend {
                key: key.to_string(),
                source,
            },
        }
    }

    /// Stores the file at `path`, whose digest and size the caller computed
    /// while writing it, under its content key.
    pub async fn put_file(
        &self,
        path: &Path,
        sha256: Sha256,
        size: u64,
    ) -> Result<Stored, StoreError> {
        self.put_file_at(warc_key(&sha256), path, sha256, size)
            .await
    }

    /// [`Store::put_file`] under another content key (an imported file
    /// as received: [`import_key`]).
    pub async fn put_file_at(
        &self,
        key: String,
        path: &Path,
        sha256: Sha256,
        size: u64,
    ) -> Result<Stored, StoreError> {
        let location = ObjectPath::from(key.as_str());
        match self.inner.head(&location).await {
            Ok(meta) => {
                // Present already: never overwrite; check what is there.
                if meta.size != size {
                    return Err(StoreError::SizeMismatch {
                        key,
                        expected: size,
                        actual: meta.size,
                    });
                }
                self.verify(&key, sha256, size).await?;
                return Ok(Stored {
                    key,
                    already_present: true,
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Self::backend(&key)(e)),
        }

        if let (Some(root), true) = (&self.local_root, self.link_puts) {
            if let Some(stored) = self.link_into_place(root, path, &key, sha256, size).await? {
                return Ok(stored);
            }
        }
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        let upload = self
            .inner
            .put_multipart(&location)
            .await
            .map_err(Self::backend(&key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut hasher = sha2::Sha256::new();
        let mut sent = 0u64;
        let result: Result<(), StoreError> = async {
            loop {
                let n = file.read(&mut buf).await.map_err(io_err)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                sent += n as u64;
                writer
                    .wait_for_capacity(2)
                    .await
                    .map_err(Self::backend(&key))?;
                writer.write(&buf[..n]);
            }
            Ok(())
        }
        .await;
        let actual = Sha256::from_hasher(hasher);
        let checked = result.and_then(|()| {
            if sent != size {
                Err(StoreError::SizeMismatch {
                    key: key.clone(),
                    expected: size,
                    actual: sent,
                })
            } else if actual != sha256 {
                Err(StoreError::Corrupt {
                    key: key.clone(),
                    expected: sha256,
                    actual,
                })
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            // The spool changed or could not be read: publish nothing.
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(Self::backend(&key))?;
        if self.reread_after_put {
            self.verify(&key, sha256, size).await?;
        } else {
            let meta = self
                .inner
                .head(&location)
                .await
                .map_err(Self::backend(&key))?;
            if meta.size != size {
                return Err(StoreError::SizeMismatch {
                    key,
                    expected: size,
                    actual: meta.size,
                });
            }
        }
        Ok(Stored {
            key,
            already_present: false,
        })
    }

    /// Local stores: hard-links the finished file into place (no second copy
    /// of a large WARC), with the file and the directory fsync'd, then
    /// re-reads and hashes it as any put. `None` when linking is not
    /// possible here (another filesystem): the caller copies instead.
    async fn link_into_place(
        &self,
        root: &Path,
        path: &Path,
        key: &str,
        sha256: Sha256,
        size: u64,
    ) -> Result<Option<Stored>, StoreError> {
        let dest = root.join(key);
        let (src, target) = (path.to_path_buf(), dest.clone());
        let linked = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            std::fs::File::open(&src)?.sync_all()?;
            let dir = target.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)?;
            match std::fs::hard_link(&src, &target) {
                Ok(()) => {}
                // Not on this filesystem, or links not allowed: copy.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::CrossesDevices | std::io::ErrorKind::PermissionDenied
                    ) || e.raw_os_error() == Some(1) =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            }
            std::fs::File::open(dir)?.sync_all()?;
            Ok(true)
        })
        .await
        .map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: std::io::Error::other(e),
        })?;
        match linked {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another writer put the same bytes first: check them.
                self.verify(key, sha256, size).await?;
                return Ok(Some(Stored {
                    key: key.to_string(),
                    already_present: true,
                }));
            }
            Err(source) => return Err(StoreError::Io { path: dest, source }),
        }
        if let Err(e) = self.verify(key, sha256, size).await {
            // The spool did not hold what was hashed: publish nothing.
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
        Ok(Some(Stored {
            key: key.to_string(),
            already_present: false,
        }))
    }

    /// Re-reads an object and checks its size and digest.
    pub async fn verify(&self, key: &str, sha256: Sha256, size: u64) -> Result<(), StoreError> {
        let (actual, bytes) = match &self.local_root {
            // Directly, in 1 MiB reads: object_store's local stream reads
            // 8 KiB at a time, each a trip to the blocking pool.
            Some(root) => {
                let path = root.join(key);
                let p = path.clone();
                tokio::task::spawn_blocking(move || hash_file(&p))
                    .await
                    .map_err(|e| StoreError::Io {
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })?
                    .map_err(|source| match source.kind() {
                        std::io::ErrorKind::NotFound => StoreError::NotFound(key.to_string()),
                        _ => StoreError::Io { path, source },
                    })?
            }
            None => {
                let mut sink = tokio::io::sink();
                self.stream_to(key, None, &mut sink).await?
            }
        };
        if bytes != size {
            return Err(StoreError::SizeMismatch {
                key: key.to_string(),
                expected: size,
                actual: bytes,
            });
        }
        if actual != sha256 {
            return Err(StoreError::Corrupt {
                key: key.to_string(),
                expected: sha256,
                actual,
            });
        }
        Ok(())
    }

    /// Copies a whole object to `dest`, checking it against its digest. The
    /// caller must discard `dest` on error.
    pub async fn copy_to<W: AsyncWrite + Unpin>(
        &self,
        key: &str,
        sha256: Sha256,
        dest: &mut W,
    ) -> Result<u64, StoreError> {
        let (actual, bytes) = self.stream_to(key, None, dest).await?;
        if actual != sha256 {
            return Err(StoreError::Corrupt {
                key: key.to_string(),
                expected: sha256,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Copies a byte range of an object to `dest` (a record, by its offset
    /// and length). The range alone cannot be checked against the object's
    /// key; record digests inside it are checked by the reader.
    pub async fn copy_range_to<W: AsyncWrite + Unpin>(
        &self,
        key: &str,
        range: Range<u64>,
        dest: &mut W,
    ) -> Result<u64, StoreError> {
        let want = range.end - range.start;
        let (_, bytes) = self.stream_to(key, Some(range), dest).await?;
        if bytes != want {
            return Err(StoreError::SizeMismatch {
                key: key.to_string(),
                expected: want,
                actual: bytes,
            });
        }
        Ok(bytes)
    }

    /// Opens a replica: as `open`, but a local replica always gets its own
    /// copy of each file.
    pub fn open_replica(url: &str) -> Result<Store, StoreError> {
        let mut store = Store::open(url)?;
        store.link_puts = false;
        Ok(store)
    }

    /// The store's URL with any password hidden.
    pub fn redacted_url(&self) -> String {
        crate::model::redact_url(&self.url)
    }

    /// Repairs a damaged or missing object from a good copy at `path`:
    /// the bad one is deleted, then the good bytes are put and verified.
    /// The only place an object is ever rewritten.
    pub async fn repair(
        &self,
        key: &str,
        path: &Path,
        sha256: Sha256,
        size: u64,
    ) -> Result<(), StoreError> {
        let is_content_key = key == warc_key(&sha256)
            || ["warc", "warc.gz", "wacz"]
                .iter()
                .any(|ext| key == import_key(&sha256, ext));
        if !is_content_key {
            return Err(StoreError::Corrupt {
                key: key.to_string(),
                expected: sha256,
                actual: sha256,
            });
        }
        let location = ObjectPath::from(key);
        match self.inner.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Self::backend(key)(e)),
        }
        self.put_file_at(key.to_string(), path, sha256, size)
            .await?;
        Ok(())
    }

    /// Writes a small object under a chosen key, once: if the key exists,
    /// its content must be the same bytes (then nothing is written).
    pub async fn put_named(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let sha = Sha256::of(bytes);
        if let Some(existing) = self.get_bytes_opt(key).await? {
            return if Sha256::of(&existing) == sha {
                Ok(())
            } else {
                Err(StoreError::Corrupt {
                    key: key.to_string(),
                    expected: sha,
                    actual: Sha256::of(&existing),
                })
            };
        }
        let location = ObjectPath::from(key);
        self.inner
            .put(&location, bytes.to_vec().into())
            .await
            .map_err(Self::backend(key))?;
        match self.get_bytes_opt(key).await? {
            Some(back) if Sha256::of(&back) == sha => Ok(()),
            Some(back) => Err(StoreError::Corrupt {
                key: key.to_string(),
                expected: sha,
                actual: Sha256::of(&back),
            }),
            None => Err(StoreError::NotFound(key.to_string())),
        }
    }

    /// A small object's bytes, or `None` when there is no such object.
    pub async fn get_bytes_opt(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let location = ObjectPath::from(key);
        match self.inner.get(&location).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(Self::backend(key))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::backend(key)(e)),
        }
    }

    /// Copies an object to `dest` as it is, and returns its digest and
    /// size without judging them (for verification that names what is
    /// wrong).
    pub async fn download<W: AsyncWrite + Unpin>(
        &self,
        key: &str,
        dest: &mut W,
    ) -> Result<(Sha256, u64), StoreError> {
        self.stream_to(key, None, dest).await
    }

    async fn stream_to<W: AsyncWrite + Unpin>(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        dest: &mut W,
    ) -> Result<(Sha256, u64), StoreError> {
        let location = ObjectPath::from(key);
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .inner
            .get_opts(&location, options)
            .await
            .map_err(Self::backend(key))?;
        let mut stream = result.into_stream();
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(Self::backend(key))?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            dest.write_all(&chunk)
                .await
                .map_err(|source| StoreError::Io {
                    path: PathBuf::from(key),
                    source,
                })?;
        }
        dest.flush().await.map_err(|source| StoreError::Io {
            path: PathBuf::from(key),
            source,
        })?;
        Ok((Sha256::from_hasher(hasher), bytes))
    }

    /// A blocking reader over a whole object, for code that runs on a
    /// blocking thread (verification streams an object through the WARC
    /// reader without a scratch copy). A local store's file is read
    /// directly; a remote object arrives through a small bounded channel
    /// fed by a task on the runtime, so memory stays a few chunks. Must be
    /// called from within the runtime.
    pub async fn blocking_reader(
        &self,
        key: &str,
    ) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            return match std::fs::File::open(&path) {
                Ok(f) => Ok(Box::new(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(StoreError::NotFound(key.to_string()))
                }
                Err(source) => Err(StoreError::Io { path, source }),
            };
        }
        let location = ObjectPath::from(key);
        let result = self
            .inner
            .get(&location)
            .await
            .map_err(Self::backend(key))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let mut stream = result.into_stream();
        tokio::spawn(async move {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        }))
    }

    /// Size, modification time and entity tag of an object, as the store
    /// reports them.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, StoreError> {
        let meta = self
            .inner
            .head(&ObjectPath::from(key))
            .await
            .map_err(Self::backend(key))?;
        Ok(ObjectInfo {
            size: meta.size,
            last_modified: meta.last_modified,
            e_tag: meta.e_tag,
        })
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let prefix_path = ObjectPath::from(prefix);
        let mut keys = Vec::new();
        let mut stream = self.inner.list(Some(&prefix_path));
        while let Some(meta) = stream.next().await {
            keys.push(meta.map_err(Self::backend(prefix))?.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }
}

/// A `Read` over chunks sent from the runtime (see
/// [`Store::blocking_reader`]).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
