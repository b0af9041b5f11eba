//! API tokens: what a caller of the HTTP surface may do.
//!
//! A token is `custody_<id>_<secret>`. The index keeps its id, role and the
//! SHA-256 of the whole token, never the token itself, which is shown once
//! when it is created (`custody token create`). Roles are ordered: an
//! `admin` may do what an `archivist` may, who may do what a `reader` may.

use chrono::Utc;
use rand::RngCore;

use crate::index::{IndexError, TokenIndex};
use crate::model::{ApiToken, Role, Sha256};

/// A token just made: its record and the secret to hand over once.
pub struct NewToken {
    pub record: ApiToken,
    pub token: String,
}

/// Makes and stores a token.
pub async fn create(
    index: &dyn TokenIndex,
    role: Role,
    label: Option<String>,
) -> Result<NewToken, IndexError> {
    let mut bytes = [0u8; 36];
    rand::rng().fill_bytes(&mut bytes);
    let id = hex::encode(&bytes[..4]);
    let token = format!("custody_{id}_{}", hex::encode(&bytes[4..]));
    let record = ApiToken {
        id,
        secret_sha256: Some(Sha256::of(token.as_bytes())),
        role,
        label,
        created_at: Utc::now(),
        revoked_at: None,
    };
    index.put_token(&record).await?;
    Ok(NewToken { record, token })
}

/// The active token a presented secret names, if any.
pub async fn authenticate(
    index: &dyn TokenIndex,
    presented: &str,
) -> Result<Option<ApiToken>, IndexError> {
    let presented = presented.trim();
    if !presented.starts_with("custody_") || presented.len() > 200 {
        return Ok(None);
    }
    let found = index
        .token_by_secret(&Sha256::of(presented.as_bytes()))
        .await?;
    Ok(found.filter(|t| t.revoked_at.is_none()))
}
