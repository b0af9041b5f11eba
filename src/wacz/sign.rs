//! The WACZ signing spec's anonymous signature: ECDSA P-256 over SHA-256
//! of the `hash` string (`sha256:<hex>` of `datapackage.json`, as UTF-8),
//! the signature in the IEEE P1363 form WebCrypto produces (r || s, base64),
//! the public key as base64 SubjectPublicKeyInfo DER. This is the form
//! ArchiveWeb.page writes, so its verifiers accept custody's packages.
//!
//! The key lives in `wacz-signing.key` in the data directory (mode 0600),
//! made on first use; its public half is what an investigator pins.

use std::path::{Path, PathBuf};

use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

const KEY_FILE: &str = "wacz-signing.key";

/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
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
}

pub struct PackageKey {
    signing: SigningKey,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl PackageKey {
    /// Loads the key from `data_dir`, creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<PackageKey, SignError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| SignError::Io {
            path: path.clone(),
            source,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key = loop {
                    let seed: [u8; 32] = rand::random();
                    if let Ok(k) = SigningKey::from_bytes(&seed.into()) {
                        break k;
                    }
                };
                let text = format!("{}\n", hex::encode(key.to_bytes()));
                crate::tlog::write_private(&path, text.as_bytes()).map_err(io)?;
                // Another process may have won the race: use what is there.
                std::fs::read_to_string(&path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignError::Damaged(path.clone()))?;
        let signing =
            SigningKey::from_bytes(&bytes.into()).map_err(|_| SignError::Damaged(path.clone()))?;
        Ok(PackageKey { signing })
    }

    /// The public key, base64 SPKI DER (the `publicKey` field).
    pub fn public_key(&self) -> String {
        let point = VerifyingKey::from(&self.signing).to_encoded_point(false);
        b64().encode([&SPKI_PREFIX[..], point.as_bytes()].concat())
    }

    /// Signs `hash` (the `sha256:<hex>` text); base64 r || s.
    pub fn sign(&self, hash: &str) -> String {
        let sig: Signature = self.signing.sign(hash.as_bytes());
        b64().encode(sig.to_bytes())
    }
}

/// Why a package signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("publicKey is not base64")]
    KeyNotBase64,
    #[error("publicKey is not a P-256 SubjectPublicKeyInfo")]
    NotP256Key,
    #[error("signature is not base64")]
    SignatureNotBase64,
    #[error("signature is not an ECDSA P-256 signature")]
    NotP256Signature,
    #[error("the signature does not match the hash and public key")]
    Mismatch,
}

/// Checks an anonymous signature; `Err` says what is wrong.
pub fn verify(hash: &str, signature_b64: &str, public_key_b64: &str) -> Result<(), SignatureError> {
    let der = b64()
        .decode(public_key_b64.trim())
        .map_err(|_| SignatureError::KeyNotBase64)?;
    let key = der
        .strip_prefix(&SPKI_PREFIX[..])
        .and_then(|point| VerifyingKey::from_sec1_bytes(point).ok())
        .ok_or(SignatureError::NotP256Key)?;
    let sig_bytes = b64()
        .decode(signature_b64.trim())
        .map_err(|_| SignatureError::SignatureNotBase64)?;
    let sig = Signature::from_slice(&sig_bytes)
        .or_else(|_| Signature::from_der(&sig_bytes))
        .map_err(|_| SignatureError::NotP256Signature)?;
    key.verify(hash.as_bytes(), &sig)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_hash_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = PackageKey::load_or_create(dir.path()).unwrap();
        let again = PackageKey::load_or_create(dir.path()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let sig = key.sign(hash);
        verify(hash, &sig, &key.public_key()).unwrap();
        let other = hash.replace("9f86", "9f87");
        assert!(verify(&other, &sig, &key.public_key()).is_err());
    }
}
