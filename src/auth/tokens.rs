//! Tokens (RFC 8725): a short-lived JWT access token that carries identity only, and an opaque
//! refresh token stored as a hash and rotated on every use. Both belong to a session (a refresh
//! token family); the session is checked on every request, so revoking it ends them all.

use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::schema::{refresh_tokens, sessions};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};

const ISSUER: &str = "renkei";
const AUDIENCE: &str = "renkei-api";
const ACCESS: &str = "access";
/// The browser console's session cookie: never accepted as a bearer token.
const BROWSER: &str = "browser";
/// The one signing algorithm accepted; anything else, `none` included, is refused.
const ALGORITHM: Algorithm = Algorithm::HS256;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// The session (refresh-token family) this token belongs to.
    pub sid: String,
    /// Token purpose; only `access` tokens are accepted by the API.
    pub typ: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl_secs: i64,
    pub session_ttl_secs: i64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl_secs: i64, session_ttl_secs: i64) -> TokenKeys {
        let mut validation = Validation::new(ALGORITHM);
        validation.algorithms = vec![ALGORITHM];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Tokens live 15 minutes at most; a few seconds of clock skew is plenty.
        validation.leeway = 5;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_secs,
            session_ttl_secs,
        }
    }

    pub fn issue_access(&self, user_id: &str, session_id: &str) -> AppResult<String> {
        self.issue(user_id, session_id, ACCESS, self.access_ttl_secs)
    }

    /// The value of the console's session cookie: it lives as long as the session, which is
    /// still checked in the database on every request.
    pub fn issue_browser(&self, user_id: &str, session_id: &str) -> AppResult<String> {
        self.issue(user_id, session_id, BROWSER, self.session_ttl_secs)
    }

    /// Verifies a console session cookie as [`TokenKeys::verify_access`] does an access token.
    pub fn verify_browser(&self, token: &str) -> AppResult<Claims> {
        self.verify(token, BROWSER)
    }

    fn issue(&self, user_id: &str, session_id: &str, typ: &str, ttl_secs: i64) -> AppResult<String> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.into(),
            sid: session_id.into(),
            typ: typ.into(),
            iat,
            exp: iat + ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.encoding)
            .map_err(|e| AppError::internal(format!("jwt encode: {e}")))
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and purpose.
    pub fn verify_access(&self, token: &str) -> AppResult<Claims> {
        self.verify(token, ACCESS)
    }

    fn verify(&self, token: &str, typ: &str) -> AppResult<Claims> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::invalid_token())?;
        if data.header.alg != ALGORITHM || data.claims.typ != typ {
            return Err(AppError::invalid_token());
        }
        Ok(data.claims)
    }
}

/// Whether `token` can be one [`random_token`] made for an e-mail's link: URL-safe and short, so
/// it goes into a link and a redirect as it is.
pub fn is_link_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 200
        && token.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// A random URL-safe token of `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// What a successful sign-in or refresh hands to the client.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
}

#[derive(Queryable, Selectable, Insertable, Debug)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
    pub client_ip: Option<String>,
}

/// Opens a new session for the user and returns its first token pair.
pub fn open_session(
    conn: &mut DbConn,
    keys: &TokenKeys,
    user_id: &str,
    client_ip: Option<String>,
) -> AppResult<TokenPair> {
    Ok(open_session_with_id(conn, keys, user_id, client_ip)?.1)
}

/// [`open_session`], also answering the new session's id.
pub fn open_session_with_id(
    conn: &mut DbConn,
    keys: &TokenKeys,
    user_id: &str,
    client_ip: Option<String>,
) -> AppResult<(String, TokenPair)> {
    let t = now();
    let session = Session {
        id: new_id(),
        user_id: user_id.into(),
        created_at: t,
        expires_at: t + Duration::seconds(keys.session_ttl_secs),
        revoked_at: None,
        revoked_reason: None,
        client_ip,
    };
    diesel::insert_into(sessions::table).values(&session).execute(conn)?;
    let pair = issue_pair(conn, keys, user_id, &session.id)?;
    Ok((session.id, pair))
}

fn issue_pair(conn: &mut DbConn, keys: &TokenKeys, user_id: &str, session_id: &str) -> AppResult<TokenPair> {
    let refresh = random_token(32);
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(sha256_hex(&refresh)),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::issued_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(TokenPair {
        access_token: keys.issue_access(user_id, session_id)?,
        token_type: "Bearer",
        expires_in: keys.access_ttl_secs,
        refresh_token: refresh,
    })
}

pub enum RefreshOutcome {
    Rotated(TokenPair),
    /// Unknown, expired or revoked: nothing changed.
    Invalid,
    /// An already-used token came back: the whole family was revoked (the commit must keep that).
    ReuseDetected,
}

/// Exchanges a refresh token for a new pair. Presenting a token that was already rotated means it
/// was copied: the whole session is revoked, for the thief and the owner alike.
pub fn rotate(conn: &mut DbConn, keys: &TokenKeys, presented: &str) -> AppResult<RefreshOutcome> {
    let hash = sha256_hex(presented);
    let found: Option<(String, Option<NaiveDateTime>)> = refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(&hash))
        .select((refresh_tokens::session_id, refresh_tokens::used_at))
        .first(conn)
        .optional()?;
    let Some((session_id, used_at)) = found else { return Ok(RefreshOutcome::Invalid) };
    let t = now();
    if used_at.is_some() {
        revoke_session(conn, &session_id, "refresh_token_reuse")?;
        return Ok(RefreshOutcome::ReuseDetected);
    }
    let Some(user_id) = live_session_user(conn, &session_id)? else { return Ok(RefreshOutcome::Invalid) };
    // Claim the token; a concurrent refresh with the same token finds it used and counts as reuse.
    let claimed = diesel::update(
        refresh_tokens::table.filter(refresh_tokens::token_hash.eq(&hash)).filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(Some(t)))
    .execute(conn)?;
    if claimed != 1 {
        revoke_session(conn, &session_id, "refresh_token_reuse")?;
        return Ok(RefreshOutcome::ReuseDetected);
    }
    Ok(RefreshOutcome::Rotated(issue_pair(conn, keys, &user_id, &session_id)?))
}

/// The session's user when the session is open and unexpired, the account active and its
/// organisation active.
pub fn live_session_user(conn: &mut DbConn, session_id: &str) -> AppResult<Option<String>> {
    use crate::db::schema::users;
    let t = now();
    Ok(sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(t))
        .filter(users::active.eq(true))
        .filter(crate::users::employer_in_service())
        .select(users::id)
        .first(conn)
        .optional()?)
}

/// Whether the account opened a session from this client address since `since`: the owner's
/// own device, for the sign-in throttle.
pub fn signed_in_from(conn: &mut DbConn, user_id: &str, ip: &str, since: NaiveDateTime) -> AppResult<bool> {
    let found: Option<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::client_ip.eq(ip))
        .filter(sessions::created_at.gt(since))
        .select(sessions::id)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

pub fn revoke_session(conn: &mut DbConn, session_id: &str, reason: &str) -> AppResult<()> {
    diesel::update(sessions::table.filter(sessions::id.eq(session_id)).filter(sessions::revoked_at.is_null()))
        .set((sessions::revoked_at.eq(Some(now())), sessions::revoked_reason.eq(Some(reason))))
        .execute(conn)?;
    Ok(())
}

/// Ends every session of a user: logout everywhere, password change, deactivation.
pub fn revoke_all_sessions(conn: &mut DbConn, user_id: &str, reason: &str) -> AppResult<usize> {
    Ok(diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::revoked_at.is_null()))
        .set((sessions::revoked_at.eq(Some(now())), sessions::revoked_reason.eq(Some(reason))))
        .execute(conn)?)
}

/// Ends every session of every account of an organisation (its deactivation).
pub fn revoke_sessions_of_organization(conn: &mut DbConn, organization_id: &str, reason: &str) -> AppResult<usize> {
    use crate::db::schema::users;
    let people = users::table.filter(users::organization_id.eq(organization_id.to_string())).select(users::id);
    Ok(diesel::update(sessions::table.filter(sessions::user_id.eq_any(people)).filter(sessions::revoked_at.is_null()))
        .set((sessions::revoked_at.eq(Some(now())), sessions::revoked_reason.eq(Some(reason))))
        .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef", 900, 3600)
    }

    #[test]
    fn access_token_round_trip() {
        let k = keys();
        let t = k.issue_access("u1", "s1").unwrap();
        let c = k.verify_access(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.sid.as_str(), c.typ.as_str()), ("u1", "s1", "access"));
        assert!(c.exp - c.iat <= 900);
    }

    #[test]
    fn refuses_other_keys_and_algorithms() {
        let k = keys();
        let other = TokenKeys::new(b"another-secret-another-secret-xx", 900, 3600);
        assert!(k.verify_access(&other.issue_access("u1", "s1").unwrap()).is_err());
        // alg: none, with otherwise valid claims.
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let now = chrono::Utc::now().timestamp();
        let body = serde_json::json!({"iss":"renkei","aud":"renkei-api","sub":"u1","sid":"s1","typ":"access","iat":now,"exp":now+60,"jti":"x"});
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string());
        assert!(k.verify_access(&format!("{header}.{body}.")).is_err());
    }
}
