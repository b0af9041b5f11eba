//! Replay grants: what lets a signed-in investigator's browser load replay
//! without a credential archived code could use.
//!
//! Replayed documents are sandboxed (an opaque origin, see
//! `replay::isolate`), so the browser sends them no cookies, and archived
//! code must never hold the investigator's token. Instead, a cookie-signed
//! navigation to `/replay/...` is redirected to
//! `/g/{grant}/replay/...` (on the replay origin when one is configured),
//! and every URL the rewriter writes into the page keeps that prefix.
//!
//! A grant is `{token id}.{expiry, Unix seconds}.{MAC}`, the MAC an
//! HMAC-SHA-256 over the id and expiry keyed with the token's stored
//! digest, so any server on the same index checks it, and revoking the
//! token ends its grants. It opens replay only (never the API or the UI),
//! for reading, until it expires. Archived code can read its own URL, so a
//! grant is a capability to view replays for its lifetime: short, and
//! worth nothing else.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

use crate::index::Index;
use crate::model::ApiToken;

/// How long a grant opens replay.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// Why a grant does not open replay.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("this replay link is malformed; open the page again from custody's UI")]
    Malformed,
    #[error("this replay link has expired; open the page again from custody's UI")]
    Expired,
    #[error("this replay link is not valid (its token is unknown or revoked); sign in and open the page again")]
    Invalid,
}

fn mac(token: &ApiToken, expires: i64) -> Option<String> {
    let key = token.secret_sha256?;
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).ok()?;
    m.update(format!("custody replay grant\n{}\n{expires}", token.id).as_bytes());
    Some(hex::encode(&m.finalize().into_bytes()[..16]))
}

/// The token a UI form carries for a signed-in caller: a MAC of the
/// caller's API token, so a page elsewhere, which cannot read custody's
/// pages, cannot make a form custody accepts (see `ui::check_form`).
pub fn form_token(token: &ApiToken) -> Option<String> {
    Some(hex::encode(form_mac(token)?.finalize().into_bytes()))
}

fn form_mac(token: &ApiToken) -> Option<Hmac<sha2::Sha256>> {
    let key = token.secret_sha256?;
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).ok()?;
    m.update(format!("custody ui form\n{}", token.id).as_bytes());
    Some(m)
}

/// Whether `given` is [`form_token`]'s token for `token` (compared in
/// constant time).
pub fn form_token_holds(token: &ApiToken, given: &str) -> bool {
    match (form_mac(token), hex::decode(given.trim())) {
        (Some(m), Ok(bytes)) => m.verify_slice(&bytes).is_ok(),
        _ => false,
    }
}

/// A grant for `token`, valid from `now` for [`LIFETIME`].
pub fn issue(token: &ApiToken, now: DateTime<Utc>) -> Option<String> {
    let expires = (now + LIFETIME).timestamp();
    Some(format!("{}.{expires}.{}", token.id, mac(token, expires)?))
}

/// The token a grant was issued for, if it still opens replay at `now`.
pub async fn check(
    index: &dyn Index,
    grant: &str,
    now: DateTime<Utc>,
) -> Result<ApiToken, GrantError> {
    let mut parts = grant.rsplitn(3, '.');
    let (Some(given), Some(expires), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(GrantError::Malformed);
    };
    let expires: i64 = expires.parse().map_err(|_| GrantError::Malformed)?;
    if expires < now.timestamp() {
        return Err(GrantError::Expired);
    }
    if expires > (now + LIFETIME).timestamp() + 60 {
        return Err(GrantError::Invalid);
    }
    let tokens = index.tokens().await.map_err(|_| GrantError::Invalid)?;
    let token = tokens
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or(GrantError::Invalid)?;
    let expected = mac(&token, expires).ok_or(GrantError::Invalid)?;
    // Compared in constant time: the MAC is the secret part.
    let same = expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(GrantError::Invalid);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, Sha256};

    fn token(id: &str, secret: &str) -> ApiToken {
        ApiToken {
            id: id.into(),
            secret_sha256: Some(Sha256::of(secret.as_bytes())),
            role: Role::Reader,
            label: None,
            created_at: Utc::now(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_grant_is_bound_to_its_token_and_expiry() {
        let now = Utc::now();
        let t = token("ct_abc", "secret one");
        let g = issue(&t, now).unwrap();
        let (id_expiry, m) = g.rsplit_once('.').unwrap();
        assert_eq!(
            mac(&t, id_expiry.rsplit_once('.').unwrap().1.parse().unwrap()).unwrap(),
            m
        );
        // Another token's key, or a later expiry, gives another MAC.
        let other = token("ct_abc", "secret two");
        let expires = (now + LIFETIME).timestamp();
        assert_ne!(mac(&other, expires), mac(&t, expires));
        assert_ne!(mac(&t, expires + 1), mac(&t, expires));
    }
}
