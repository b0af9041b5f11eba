//! The transparency log: an append-only Merkle tree (RFC 9162 hashing, see
//! [`merkle`]) over canonical encodings of every capture manifest, evidence
//! link and custody event, with checkpoints signed by the instance's Ed25519
//! key in the C2SP `tlog-checkpoint` signed-note form.
//!
//! Leaves are appended by the index in the same transaction that records
//! their object, so an indexed capture always has its leaf. A checkpoint
//! commits to the tree's size and root; inclusion and consistency proofs
//! against checkpoints can be checked offline with the public key that
//! `custody log key` prints.

pub mod leaf;
pub mod merkle;
pub mod tsa;

use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use sha2::Digest;

use crate::model::Sha256;

pub use leaf::{capture_leaf, event_leaf, fixity_leaf, link_leaf, Checkpoint, Leaf, LogLeaf};

#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    #[error("cannot read or create the log key {path}: {source}")]
    KeyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the log key {path} is malformed: {reason}")]
    BadKey { path: PathBuf, reason: String },
    /// `keys_dir` is set and has no key: provisioned keys are never made
    /// on the spot (each process would sign as a log of its own).
    #[error("no {file} in keys_dir {dir}: create the keys once with `custody keys generate --dir {dir}` and give every daemon that directory (CUSTODY_KEYS_DIR)")]
    NotProvisioned { file: &'static str, dir: PathBuf },
    #[error("{0}")]
    BadNote(String),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    NotFound(String),
    /// The stored log does not reproduce what a checkpoint signed.
    #[error("{0}")]
    Mismatch(String),
}

/// The instance's log signing key, kept in the data directory.
pub struct LogKey {
    name: String,
    signing: SigningKey,
}

/// File name of the signing key in the data directory (mode 0600).
pub const KEY_FILE: &str = "log-signing.key";

/// The Ed25519 algorithm byte of the signed-note key formats.
const ALG_ED25519: u8 = 1;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The 4-byte key hash of the note formats: SHA-256 of the key name, a
/// newline, the algorithm byte and the public key.
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = sha2::Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl LogKey {
    /// Loads the key from `data_dir`, creating it (with a random origin
    /// name) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<LogKey, TlogError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| TlogError::KeyIo {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, text.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let seed: [u8; 32] = rand::random();
                let suffix: [u8; 4] = rand::random();
                let key = LogKey {
                    name: format!("custody-{}", hex::encode(suffix)),
                    signing: SigningKey::from_bytes(&seed),
                };
                let public = key.signing.verifying_key().to_bytes();
                let hash = key_hash(&key.name, &public);
                let text = format!(
                    "PRIVATE+KEY+{}+{}+{}\n",
                    key.name,
                    hex::encode(hash),
                    b64().encode([&[ALG_ED25519][..], &seed].concat())
                );
                write_private(&path, text.as_bytes()).map_err(io)?;
                // Another process may have won the race: use what is there.
                let text = std::fs::read_to_string(&path).map_err(io)?;
                Self::parse(&path, text.trim())
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key the configuration names: from `keys_dir` when keys were
    /// provisioned (never created there), else from the data directory,
    /// created on first use.
    pub fn for_config(config: &crate::config::Config) -> Result<LogKey, TlogError> {
        if !config.keys_provisioned {
            return Self::load_or_create(&config.keys_dir);
        }
        Self::load_existing(&config.keys_dir)?.ok_or_else(|| TlogError::NotProvisioned {
            file: KEY_FILE,
            dir: config.keys_dir.clone(),
        })
    }

    /// The key in `data_dir`, if there is one (never creates it).
    pub fn load_existing(data_dir: &Path) -> Result<Option<LogKey>, TlogError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path, text.trim()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TlogError::KeyIo { path, source }),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<LogKey, TlogError> {
        let bad = |reason: &str| TlogError::BadKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+name+hash+key"));
        };
        let raw = b64()
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let seed: [u8; 32] = raw[1..].try_into().map_err(|_| bad("wrong length"))?;
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        if hex::encode(key_hash(name, &public)) != hash {
            return Err(bad("its hash does not match its name and key"));
        }
        Ok(LogKey {
            name: name.to_string(),
            signing,
        })
    }

    /// The log's origin line and key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key in the note verifier-key form:
    /// `name+hash+base64(0x01 || public key)`.
    pub fn verifier_key(&self) -> String {
        let public = self.signing.verifying_key().to_bytes();
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &public)),
            b64().encode([&[ALG_ED25519][..], &public].concat())
        )
    }

    /// A signed checkpoint note for a tree of `size` leaves with `root`.
    pub fn sign_checkpoint(&self, size: u64, root: &Sha256) -> String {
        let body = checkpoint_body(&self.name, size, root);
        let signature = self.signing.sign(body.as_bytes()).to_bytes();
        let public = self.signing.verifying_key().to_bytes();
        let mut sig = key_hash(&self.name, &public).to_vec();
        sig.extend_from_slice(&signature);
        format!("{body}\n\u{2014} {} {}\n", self.name, b64().encode(sig))
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Written whole under a temporary name, then linked into place (which
    // fails if the name is taken): processes starting together never read
    // a half-written key, and the first one's key is everyone's.
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => std::fs::File::open(dir)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The checkpoint text (C2SP tlog-checkpoint): origin, size, base64 root.
pub fn checkpoint_body(origin: &str, size: u64, root: &Sha256) -> String {
    format!("{origin}\n{size}\n{}\n", b64().encode(root.as_bytes()))
}

/// What a verified checkpoint note says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedCheckpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: Sha256,
}

/// Verifies a checkpoint note against a verifier key (as `log key` prints
/// it) and returns what it commits to.
pub fn verify_checkpoint(note: &str, verifier_key: &str) -> Result<CheckedCheckpoint, TlogError> {
    let bad = |s: &str| TlogError::BadNote(s.to_string());
    let mut vk = verifier_key.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (vk.next(), vk.next(), vk.next()) else {
        return Err(bad("the verifier key is not name+hash+key"));
    };
    let raw = b64()
        .decode(key)
        .map_err(|_| bad("the verifier key is not base64"))?;
    if raw.len() != 33 || raw[0] != ALG_ED25519 {
        return Err(bad("the verifier key is not an Ed25519 key"));
    }
    let public: [u8; 32] = raw[1..].try_into().map_err(|_| bad("bad key length"))?;
    let expected_hash = key_hash(name, &public);
    if hex::encode(expected_hash) != hash {
        return Err(bad("the verifier key's hash does not match"));
    }
    let verifying = VerifyingKey::from_bytes(&public)
        .map_err(|_| bad("the verifier key is not a valid point"))?;
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or_else(|| bad("the note has no signature block"))?;
    let body = format!("{body}\n");
    let mut verified = false;
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((signer, sig)) = rest.split_once(' ') else {
            continue;
        };
        if signer != name {
            continue;
        }
        let sig = b64()
            .decode(sig)
            .map_err(|_| bad("a signature is not base64"))?;
        if sig.len() != 68 || sig[..4] != expected_hash {
            continue;
        }
        let signature = ed25519_dalek::Signature::from_slice(&sig[4..])
            .map_err(|_| bad("a signature is malformed"))?;
        if verifying.verify(body.as_bytes(), &signature).is_ok() {
            verified = true;
        } else {
            return Err(bad("the checkpoint's signature does not verify"));
        }
    }
    if !verified {
        return Err(bad("the checkpoint has no signature by this key"));
    }
    let mut lines = body.lines();
    let origin = lines.next().unwrap_or_default().to_string();
    let tree_size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad("the checkpoint's size line is not a number"))?;
    let root = lines
        .next()
        .and_then(|l| b64().decode(l).ok())
        .and_then(|r| <[u8; 32]>::try_from(r).ok())
        .map(Sha256::from_bytes)
        .ok_or_else(|| bad("the checkpoint's root is not 32 bytes of base64"))?;
    if origin != name {
        return Err(bad("the checkpoint's origin is not the key's name"));
    }
    Ok(CheckedCheckpoint {
        origin,
        tree_size,
        root,
    })
}

/// The tree head of the first `size` leaf hashes.
pub fn root_of(hashes: &[Sha256]) -> Sha256 {
    let raw: Vec<merkle::Hash> = hashes.iter().map(|h| *h.as_bytes()).collect();
    Sha256::from_bytes(merkle::root(&raw))
}

/// That `key` signed the log's last checkpoint (or that there is none): a
/// process with another key must not add checkpoints of another origin to
/// this log (nobody could check them against the published key).
pub async fn same_signer(
    index: &dyn crate::index::LogIndex,
    key: &LogKey,
) -> Result<(), TlogError> {
    let checkpoints = index.checkpoints().await?;
    let Some(last) = checkpoints.last() else {
        return Ok(());
    };
    if verify_checkpoint(&last.note, &key.verifier_key()).is_ok() {
        return Ok(());
    }
    let origin = last.note.lines().next().unwrap_or_default();
    Err(TlogError::Mismatch(format!(
        "this index's log (origin {origin}) was signed by another key, not by {}: give every \
         process on one index the same keys (keys_dir / CUSTODY_KEYS_DIR; `custody keys show` \
         prints a directory's keys)",
        key.name()
    )))
}

/// Signs and records a checkpoint of the whole log as it stands (or returns
/// the existing one for this size). Refused when the log's last checkpoint
/// was signed by another key ([`same_signer`]).
/// Each configured TSA is then asked (through the index's queue) to
/// timestamp the note.
pub async fn make_checkpoint(
    index: &dyn crate::index::LogIndex,
    store: &crate::store::Store,
    key: &LogKey,
    tsa_urls: &[String],
) -> Result<Checkpoint, TlogError> {
    let size = index.log_size().await?;
    if size == 0 {
        return Err(TlogError::NotFound(
            "the log is empty: capture something first".into(),
        ));
    }
    if let Some(c) = index
        .checkpoints()
        .await?
        .into_iter()
        .find(|c| c.tree_size == size)
    {
        return Ok(c);
    }
    same_signer(index, key).await?;
    let hashes = index.log_leaf_hashes(size).await?;
    let root = root_of(&hashes);
    let checkpoint = Checkpoint {
        tree_size: size,
        root,
        note: key.sign_checkpoint(size, &root),
        created_at: Utc::now(),
    };
    // The log goes to the store first (the leaves since the previous
    // checkpoint, then the note), so it outlives the index: `reindex`
    // restores it from there. The checkpoint row comes last.
    let previous = index
        .checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.tree_size < size)
        .map(|c| c.tree_size)
        .max()
        .unwrap_or(0);
    let leaves = index.log_leaves(previous, size).await?;
    let mut segment = String::new();
    for leaf in &leaves {
        segment.push_str(&serde_json::to_string(leaf).expect("a leaf serialises"));
        segment.push('\n');
    }
    store
        .put_named(&segment_key(previous, size), segment.as_bytes())
        .await?;
    store
        .put_named(&checkpoint_key(size), checkpoint.note.as_bytes())
        .await?;
    index.put_checkpoint(&checkpoint).await?;
    for url in tsa_urls {
        index
            .request_timestamp(
                "checkpoint",
                &size.to_string(),
                Sha256::of(checkpoint.note.as_bytes()),
                url,
            )
            .await?;
    }
    Ok(checkpoint)
}

/// Store key of the leaves `from..to` (JSON lines), written with the
/// checkpoint of size `to`.
pub fn segment_key(from: u64, to: u64) -> String {
    format!("log/leaves/{from:020}-{to:020}.jsonl")
}

/// Store key of the signed checkpoint note of a tree of `size` leaves.
pub fn checkpoint_key(size: u64) -> String {
    format!("log/checkpoints/{size:020}.note")
}

/// A leaf's inclusion proof in a checkpoint.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub leaf_hash: Sha256,
    /// The leaf's canonical bytes (hash them with a 0x00 prefix).
    pub leaf_data: String,
    pub tree_size: u64,
    pub root: Sha256,
    /// Sibling hashes from the leaf up, as RFC 9162 orders them.
    pub proof: Vec<Sha256>,
    pub checkpoint: String,
    pub verifier_key: String,
}

/// The inclusion proof of a capture's leaf in the latest checkpoint that
/// covers it (made now if none does), checked before it is returned.
pub async fn capture_inclusion(
    index: &dyn crate::index::LogIndex,
    store: &crate::store::Store,
    key: &LogKey,
    tsa_urls: &[String],
    capture_id: &crate::model::CaptureId,
) -> Result<InclusionProof, TlogError> {
    let leaf = index
        .log_leaves_of("capture", capture_id.as_str())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            TlogError::NotFound(format!(
                "capture {capture_id} is not in the log; list captures with `custody captures`"
            ))
        })?;
    let covering = index
        .checkpoints()
        .await?
        .into_iter()
        .rfind(|c| c.tree_size > leaf.index);
    let checkpoint = match covering {
        Some(c) => c,
        None => make_checkpoint(index, store, key, tsa_urls).await?,
    };
    inclusion_in(index, key, leaf, checkpoint).await
}

/// The inclusion proof of `leaf` in `checkpoint`, made from the stored
/// leaves, which must still give the checkpoint's signed root.
pub async fn inclusion_in(
    index: &dyn crate::index::LogIndex,
    key: &LogKey,
    leaf: LogLeaf,
    checkpoint: Checkpoint,
) -> Result<InclusionProof, TlogError> {
    let hashes = index.log_leaf_hashes(checkpoint.tree_size).await?;
    let raw: Vec<merkle::Hash> = hashes.iter().map(|h| *h.as_bytes()).collect();
    let root = Sha256::from_bytes(merkle::root(&raw));
    if root != checkpoint.root {
        return Err(TlogError::Mismatch(format!(
            "the stored log no longer reproduces checkpoint {} (root {} signed, {} now): a leaf was changed or removed",
            checkpoint.tree_size, checkpoint.root, root
        )));
    }
    let proof = merkle::inclusion_proof(leaf.index as usize, &raw)
        .ok_or_else(|| TlogError::Mismatch("leaf outside its checkpoint".into()))?;
    if Sha256::from_bytes(merkle::leaf_hash(leaf.data.as_bytes())) != leaf.leaf_hash {
        return Err(TlogError::Mismatch(format!(
            "log leaf {} does not hash to its recorded hash",
            leaf.index
        )));
    }
    Ok(InclusionProof {
        leaf_index: leaf.index,
        leaf_hash: leaf.leaf_hash,
        leaf_data: leaf.data,
        tree_size: checkpoint.tree_size,
        root: checkpoint.root,
        proof: proof.into_iter().map(Sha256::from_bytes).collect(),
        checkpoint: checkpoint.note,
        verifier_key: key.verifier_key(),
    })
}

/// Checks an inclusion proof offline: the checkpoint's signature, then the
/// path from the leaf's bytes to its root.
pub fn verify_inclusion_proof(p: &InclusionProof, verifier_key: &str) -> Result<(), TlogError> {
    let checked = verify_checkpoint(&p.checkpoint, verifier_key)?;
    if checked.tree_size != p.tree_size || checked.root != p.root {
        return Err(TlogError::Mismatch(
            "the proof's size or root is not the checkpoint's".into(),
        ));
    }
    let leaf = merkle::leaf_hash(p.leaf_data.as_bytes());
    let path: Vec<merkle::Hash> = p.proof.iter().map(|h| *h.as_bytes()).collect();
    if !merkle::verify_inclusion(p.leaf_index, p.tree_size, &leaf, &path, p.root.as_bytes()) {
        return Err(TlogError::Mismatch(format!(
            "leaf {} is not included in checkpoint {}",
            p.leaf_index, p.tree_size
        )));
    }
    Ok(())
}

/// A consistency proof between two signed checkpoints.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: Sha256,
    pub new_root: Sha256,
    pub proof: Vec<Sha256>,
    pub old_checkpoint: String,
    pub new_checkpoint: String,
    pub verifier_key: String,
}

/// The consistency proof between the checkpoints of sizes `old` and `new`,
/// computed from the stored leaves and checked against both signed notes.
pub async fn consistency(
    index: &dyn crate::index::LogIndex,
    key: &LogKey,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, TlogError> {
    let checkpoints = index.checkpoints().await?;
    let find = |size: u64| {
        checkpoints
            .iter()
            .find(|c| c.tree_size == size)
            .cloned()
            .ok_or_else(|| {
                TlogError::NotFound(format!(
                    "no checkpoint of size {size}; list them with `custody log check`"
                ))
            })
    };
    let (a, b) = (find(old)?, find(new)?);
    if old > new {
        return Err(TlogError::NotFound(format!(
            "the first checkpoint ({old}) must not be larger than the second ({new})"
        )));
    }
    let hashes = index.log_leaf_hashes(new).await?;
    let raw: Vec<merkle::Hash> = hashes.iter().map(|h| *h.as_bytes()).collect();
    // The proof is made from the stored leaves: they must still give both
    // signed roots, or the log was changed after it was signed.
    for c in [&a, &b] {
        let n = (c.tree_size as usize).min(raw.len());
        let root = Sha256::from_bytes(merkle::root(&raw[..n]));
        if n as u64 != c.tree_size || root != c.root {
            return Err(TlogError::Mismatch(format!(
                "the stored log is not consistent with checkpoint {}: its leaves give root {root}, the checkpoint signed {}",
                c.tree_size, c.root
            )));
        }
    }
    let proof = merkle::consistency_proof(old as usize, &raw).unwrap_or_default();
    let p = ConsistencyProof {
        old_size: old,
        new_size: new,
        old_root: a.root,
        new_root: b.root,
        proof: proof.into_iter().map(Sha256::from_bytes).collect(),
        old_checkpoint: a.note,
        new_checkpoint: b.note,
        verifier_key: key.verifier_key(),
    };
    verify_consistency_proof(&p, &key.verifier_key())?;
    Ok(p)
}

/// Checks a consistency proof offline: both notes' signatures, then the
/// proof between their roots.
pub fn verify_consistency_proof(p: &ConsistencyProof, verifier_key: &str) -> Result<(), TlogError> {
    let a = verify_checkpoint(&p.old_checkpoint, verifier_key)?;
    let b = verify_checkpoint(&p.new_checkpoint, verifier_key)?;
    if (a.tree_size, a.root, b.tree_size, b.root)
        != (p.old_size, p.old_root, p.new_size, p.new_root)
    {
        return Err(TlogError::Mismatch(
            "the proof's sizes or roots are not the checkpoints'".into(),
        ));
    }
    let path: Vec<merkle::Hash> = p.proof.iter().map(|h| *h.as_bytes()).collect();
    if !merkle::verify_consistency(
        p.old_size,
        p.new_size,
        p.old_root.as_bytes(),
        p.new_root.as_bytes(),
        &path,
    ) {
        return Err(TlogError::Mismatch(format!(
            "checkpoint {} is not consistent with checkpoint {}: the log was rewritten between them",
            p.new_size, p.old_size
        )));
    }
    Ok(())
}

/// One checkpoint's standing in a log check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointCheck {
    pub tree_size: u64,
    pub root: Sha256,
    /// Signature verified, root reproduced from the stored leaves, and
    /// consistent with the previous checkpoint.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The consistency proof from the previous checkpoint.
    pub consistency_from: Option<u64>,
    pub consistency_proof: Vec<Sha256>,
}

/// Every checkpoint the index records and every signed note the store
/// holds, paired by tree size: a checkpoint missing from either side is a
/// problem (notes written to the store first cannot be removed from the
/// index, or the index's rows forged, without this showing).
async fn paired_checkpoints(
    index: &dyn crate::index::LogIndex,
    store: &crate::store::Store,
) -> Result<Vec<(Checkpoint, Option<String>)>, TlogError> {
    let mut rows: std::collections::BTreeMap<u64, (Checkpoint, Option<String>)> = index
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| (c.tree_size, (c, None)))
        .collect();
    for key in store.list("log/checkpoints/").await? {
        let Some(size) = key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".note"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let note = store
            .get_bytes_opt(&key)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        match rows.get_mut(&size) {
            Some((c, _)) if c.note == note => {}
            Some((_, problem)) => {
                *problem = Some(format!(
                    "its note in the index is not the signed note in the store ({key})"
                ));
            }
            None => {
                let root = note
                    .lines()
                    .nth(2)
                    .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
                    .and_then(|r| <[u8; 32]>::try_from(r).ok())
                    .map(Sha256::from_bytes)
                    .unwrap_or(Sha256::from_bytes([0; 32]));
                let c = Checkpoint {
                    tree_size: size,
                    root,
                    note,
                    created_at: Utc::now(),
                };
                rows.insert(
                    size,
                    (
                        c,
                        Some(format!("in the store ({key}) but not in the index")),
                    ),
                );
            }
        }
    }
    // Index rows whose note the store lacks.
    let stored: std::collections::BTreeSet<u64> = store
        .list("log/checkpoints/")
        .await?
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.strip_suffix(".note")?.parse().ok())
        .collect();
    for (size, (_, problem)) in rows.iter_mut() {
        if problem.is_none() && !stored.contains(size) {
            *problem = Some("in the index but its signed note is not in the store".into());
        }
    }
    Ok(rows.into_values().collect())
}

/// Checks every checkpoint, in the index and in the store: that both hold
/// it, its signature, its root against the stored leaves, and a
/// consistency proof from the previous checkpoint, verified against both
/// signed roots. Every leaf's hash is also recomputed from its bytes.
pub async fn check_log(
    index: &dyn crate::index::LogIndex,
    store: &crate::store::Store,
    key: &LogKey,
) -> Result<Vec<CheckpointCheck>, TlogError> {
    let paired = paired_checkpoints(index, store).await?;
    let size = index.log_size().await?;
    let leaves = index.log_leaves(0, size).await?;
    let mut bad_leaves = Vec::new();
    let raw: Vec<merkle::Hash> = leaves
        .iter()
        .map(|l| {
            let h = merkle::leaf_hash(l.data.as_bytes());
            if h != *l.leaf_hash.as_bytes() {
                bad_leaves.push(l.index);
            }
            h
        })
        .collect();
    let verifier = key.verifier_key();
    let mut out = Vec::new();
    let mut previous: Option<&Checkpoint> = None;
    for (c, pairing) in &paired {
        let mut problems: Vec<String> = pairing.iter().cloned().collect();
        if let Err(e) = verify_checkpoint(&c.note, &verifier) {
            problems.push(format!("signature: {e}"));
        }
        let n = c.tree_size as usize;
        let reproduced = (n <= raw.len()).then(|| merkle::root(&raw[..n]));
        match reproduced {
            None => problems.push(format!(
                "the log holds {} leaves, fewer than the {} this checkpoint signed",
                raw.len(),
                n
            )),
            Some(r) if r != *c.root.as_bytes() => problems.push(format!(
                "the stored leaves give root {}, not the signed {}",
                Sha256::from_bytes(r),
                c.root
            )),
            Some(_) => {}
        }
        let mut proof = Vec::new();
        if let (Some(p), true) = (previous, n <= raw.len()) {
            let m = p.tree_size as usize;
            proof = merkle::consistency_proof(m, &raw[..n]).unwrap_or_default();
            if !merkle::verify_consistency(
                p.tree_size,
                c.tree_size,
                p.root.as_bytes(),
                c.root.as_bytes(),
                &proof,
            ) {
                problems.push(format!(
                    "not consistent with checkpoint {}: the log was rewritten between them",
                    p.tree_size
                ));
            }
        }
        if let Some(i) = bad_leaves.iter().find(|i| (**i as usize) < n) {
            problems.push(format!("leaf {i} does not hash to its recorded hash"));
        }
        out.push(CheckpointCheck {
            tree_size: c.tree_size,
            root: c.root,
            ok: problems.is_empty(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            consistency_from: previous.map(|p| p.tree_size),
            consistency_proof: proof.into_iter().map(Sha256::from_bytes).collect(),
        });
        previous = Some(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_signs_verifiable_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::load_or_create(dir.path()).unwrap();
        let again = LogKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.verifier_key(), again.verifier_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let root = Sha256::of(b"root");
        let note = key.sign_checkpoint(7, &root);
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], key.name());
        assert_eq!(lines[1], "7");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with(&format!("\u{2014} {} ", key.name())));
        let checked = verify_checkpoint(&note, &key.verifier_key()).unwrap();
        assert_eq!(checked.tree_size, 7);
        assert_eq!(checked.root, root);

        // A changed size, a different key: refused.
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(verify_checkpoint(&forged, &key.verifier_key()).is_err());
        let other = tempfile::tempdir().unwrap();
        let other_key = LogKey::load_or_create(other.path()).unwrap();
        assert!(verify_checkpoint(&note, &other_key.verifier_key()).is_err());
    }
}
