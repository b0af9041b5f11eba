//! The WACZ signing spec's anonymous signature, in the form ReplayWeb.page
//! verifies: ECDSA P-384 with SHA-256 over the `hash` string
//! (`sha256:<hex>` of `datapackage.json`, as UTF-8), the signature in the
//! IEEE P1363 form WebCrypto produces (r || s, base64), the public key as
//! base64 SubjectPublicKeyInfo DER. ReplayWeb.page 2.5 imports an anonymous
//! key as P-384 only: a P-256 package replays there, but its signature is
//! shown as absent ("Observer Public Key: Not Available").
//!
//! The key lives in `wacz-signing.key` in the data directory (mode 0600),
//! made on first use; its public half is what an investigator pins. A
//! P-256 key found there (custody signed with P-256 before) is kept as
//! `wacz-signing-p256.key` and a P-384 key made in its place. Packages
//! signed with either curve verify.

use std::path::{Path, PathBuf};

use base64::Engine;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::signature::Verifier;

pub const KEY_FILE: &str = "wacz-signing.key";
/// Where an earlier P-256 signing key is kept.
const P256_KEY_FILE: &str = "wacz-signing-p256.key";

/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The same for P-384 (secp384r1, BIT STRING of 98 bytes).
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read or write the WACZ signing key {path}: {source}; check the data directory's permissions")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the WACZ signing key {0} is damaged; restore it from backup (packages it signed name its public key)")]
    Damaged(PathBuf),
    #[error("no wacz-signing.key in keys_dir {0}: create the keys once with `custody keys generate --dir {0}` and give every daemon that directory (CUSTODY_KEYS_DIR)")]
    NotProvisioned(PathBuf),
}

pub struct PackageKey {
    signing: p384::ecdsa::SigningKey,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

impl PackageKey {
    /// The key the configuration names: from `keys_dir` when keys were
    /// provisioned (never created there), else from the data directory,
    /// created on first use.
    pub fn for_config(config: &crate::config::Config) -> Result<PackageKey, SignError> {
        if !config.keys_provisioned {
            return Self::load_or_create(&config.keys_dir);
        }
        Self::load_existing(&config.keys_dir)?
            .ok_or_else(|| SignError::NotProvisioned(config.keys_dir.clone()))
    }

    /// The P-384 key in `dir`, if there is one (never creates or moves
    /// anything).
    pub fn load_existing(dir: &Path) -> Result<Option<PackageKey>, SignError> {
        let path = dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SignError::Io { path, source }),
        };
        Self::parse(&path, &text).map(Some)
    }

    fn parse(path: &Path, text: &str) -> Result<PackageKey, SignError> {
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 48)
            .ok_or_else(|| SignError::Damaged(path.to_path_buf()))?;
        let signing = p384::ecdsa::SigningKey::from_slice(&bytes)
            .map_err(|_| SignError::Damaged(path.to_path_buf()))?;
        Ok(PackageKey { signing })
    }

    /// Loads the key from `data_dir`, creating it on first use (and moving
    /// an earlier P-256 key aside).
    pub fn load_or_create(data_dir: &Path) -> Result<PackageKey, SignError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| SignError::Io {
            path: path.clone(),
            source,
        };
        let mut text = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        if text.as_deref().is_some_and(|t| t.trim().len() == 64) {
            // A P-256 key: kept (never deleted), no longer used to sign.
            let old = data_dir.join(P256_KEY_FILE);
            let kept = match std::fs::hard_link(&path, &old) {
                Ok(()) => Ok(()),
                // Kept already (another process moved it): the same key?
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let there = std::fs::read_to_string(&old).unwrap_or_default();
                    if Some(there.trim()) == text.as_deref().map(str::trim) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
                // Moved by another process meanwhile.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            };
            kept.map_err(|source| SignError::Io {
                path: old.clone(),
                source,
            })?;
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            tracing::warn!(
                kept = %old.display(),
                "WACZ packages are now signed with a new P-384 key (ReplayWeb.page verifies P-384 only); the P-256 key that signed earlier packages is kept"
            );
            text = None;
        }
        let text = match text {
            Some(t) => t,
            None => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key = loop {
                    let seed: [u8; 48] = std::array::from_fn(|_| rand::random());
                    if let Ok(k) = p384::ecdsa::SigningKey::from_slice(&seed) {
                        break k;
                    }
                };
                let text = format!("{}\n", hex::encode(key.to_bytes()));
                crate::tlog::write_private(&path, text.as_bytes()).map_err(io)?;
                // Another process may have won the race: use what is there.
                std::fs::read_to_string(&path).map_err(io)?
            }
        };
        Self::parse(&path, &text)
    }

    /// The public key, base64 SPKI DER (the `publicKey` field).
    pub fn public_key(&self) -> String {
        let point = p384::ecdsa::VerifyingKey::from(&self.signing).to_encoded_point(false);
        b64().encode([&P384_SPKI_PREFIX[..], point.as_bytes()].concat())
    }

    /// Signs `hash` (the `sha256:<hex>` text) with SHA-256, as WebCrypto's
    /// `{name: "ECDSA", hash: "SHA-256"}` does; base64 r || s.
    pub fn sign(&self, hash: &str) -> String {
        let sig: p384::ecdsa::Signature = self
            .signing
            .sign_prehash(&sha256(hash.as_bytes()))
            .expect("a 32-byte prehash is accepted for P-384");
        b64().encode(sig.to_bytes())
    }
}

/// Why a package signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("publicKey is not base64")]
    KeyNotBase64,
    #[error("publicKey is not a P-384 or P-256 SubjectPublicKeyInfo")]
    UnknownKey,
    #[error("signature is not base64")]
    SignatureNotBase64,
    #[error("signature is not an ECDSA signature of the key's curve")]
    BadSignature,
    #[error("the signature does not match the hash and public key")]
    Mismatch,
}

/// The curve of a base64 SPKI public key, when it is one custody accepts.
pub fn curve_of(public_key_b64: &str) -> Option<&'static str> {
    let der = b64().decode(public_key_b64.trim()).ok()?;
    if der.starts_with(&P384_SPKI_PREFIX) {
        Some("P-384")
    } else if der.starts_with(&P256_SPKI_PREFIX) {
        Some("P-256")
    } else {
        None
    }
}

/// Checks an anonymous signature (P-384 with SHA-256, as ReplayWeb.page
/// checks it, or P-256 as custody signed before); `Err` says what is wrong.
pub fn verify(hash: &str, signature_b64: &str, public_key_b64: &str) -> Result<(), SignatureError> {
    let der = b64()
        .decode(public_key_b64.trim())
        .map_err(|_| SignatureError::KeyNotBase64)?;
    let sig_bytes = b64()
        .decode(signature_b64.trim())
        .map_err(|_| SignatureError::SignatureNotBase64)?;
    if let Some(point) = der.strip_prefix(&P384_SPKI_PREFIX[..]) {
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map_err(|_| SignatureError::UnknownKey)?;
        let sig = p384::ecdsa::Signature::from_slice(&sig_bytes)
            .or_else(|_| p384::ecdsa::Signature::from_der(&sig_bytes))
            .map_err(|_| SignatureError::BadSignature)?;
        return key
            .verify_prehash(&sha256(hash.as_bytes()), &sig)
            .map_err(|_| SignatureError::Mismatch);
    }
    let key = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .and_then(|point| p256::ecdsa::VerifyingKey::from_sec1_bytes(point).ok())
        .ok_or(SignatureError::UnknownKey)?;
    let sig = p256::ecdsa::Signature::from_slice(&sig_bytes)
        .or_else(|_| p256::ecdsa::Signature::from_der(&sig_bytes))
        .map_err(|_| SignatureError::BadSignature)?;
    key.verify(hash.as_bytes(), &sig)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_signature_verifies_and_a_changed_hash_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = PackageKey::load_or_create(dir.path()).unwrap();
        let again = PackageKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        assert_eq!(curve_of(&key.public_key()), Some("P-384"));
        let sig = key.sign(HASH);
        assert_eq!(b64().decode(&sig).unwrap().len(), 96, "r || s");
        verify(HASH, &sig, &key.public_key()).unwrap();
        let other = HASH.replace("9f86", "9f87");
        assert_eq!(
            verify(&other, &sig, &key.public_key()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_earlier_p256_key_is_kept_and_its_packages_still_verify() {
        use p256::ecdsa::signature::Signer;
        let dir = tempfile::tempdir().unwrap();
        let old = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        std::fs::write(
            dir.path().join(KEY_FILE),
            format!("{}\n", hex::encode(old.to_bytes())),
        )
        .unwrap();
        let point = p256::ecdsa::VerifyingKey::from(&old).to_encoded_point(false);
        let old_public = b64().encode([&P256_SPKI_PREFIX[..], point.as_bytes()].concat());
        let old_sig: p256::ecdsa::Signature = old.sign(HASH.as_bytes());
        verify(HASH, &b64().encode(old_sig.to_bytes()), &old_public).unwrap();

        let key = PackageKey::load_or_create(dir.path()).unwrap();
        assert_eq!(curve_of(&key.public_key()), Some("P-384"));
        let kept = std::fs::read_to_string(dir.path().join(P256_KEY_FILE)).unwrap();
        assert_eq!(kept.trim(), hex::encode(old.to_bytes()));
    }
}
