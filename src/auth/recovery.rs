//! Recovery codes for two-factor sign-in: ten single-use codes an owner keeps on paper for the
//! day the phone with the authenticator app is lost. Each stands in for one TOTP code at sign-in
//! (with the password, through the same throttle); asking for new ones ends the old ones.
//!
//! A code is 12 characters of a 32-letter alphabet without look-alikes (no 0/O, 1/I): 60 random
//! bits, shown as `ABCD-EFGH-JKLM`. Only the SHA-256 of the account's id and the code is kept.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use unicode_normalization::UnicodeNormalization;

use super::tokens::sha256_hex;
use crate::db::schema::totp_recovery_codes;
use crate::db::{now, DbConn};
use crate::error::AppResult;
use crate::mail::{Mailer, Notice};
use crate::users::User;

/// How many codes an account gets at a time.
pub const COUNT: usize = 10;
const LENGTH: usize = 12;
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// The codes just made, shown to their owner once.
#[derive(Debug, serde::Serialize)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
    #[serde(serialize_with = "crate::api::utc")]
    pub created_at: NaiveDateTime,
}

/// How many unused codes an account has left, and since when.
#[derive(Debug, serde::Serialize)]
pub struct RecoveryState {
    pub remaining: i64,
    #[serde(serialize_with = "crate::api::utc_opt")]
    pub created_at: Option<NaiveDateTime>,
}

fn hash(user_id: &str, code: &str) -> String {
    sha256_hex(&format!("{user_id}:{code}"))
}

/// A code as typed, in its stored form: full-width letters and lower case are what people type,
/// and the hyphens and spaces are only for reading. `None` for anything that is no code.
fn normal_form(typed: &str) -> Option<String> {
    let code: String =
        typed.nfkc().filter(|c| !matches!(c, '-' | ' ' | '\u{3000}')).collect::<String>().to_ascii_uppercase();
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn new_code() -> String {
    let mut bytes = [0u8; LENGTH];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // 256 is a multiple of 32, so every letter is equally likely.
    bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

fn shown(code: &str) -> String {
    format!("{}-{}-{}", &code[0..4], &code[4..8], &code[8..12])
}

/// Ends the account's codes and makes [`COUNT`] new ones.
pub fn replace(conn: &mut DbConn, user_id: &str) -> AppResult<RecoveryCodes> {
    discard(conn, user_id)?;
    let created_at = now();
    let codes: Vec<String> = (0..COUNT).map(|_| new_code()).collect();
    for code in &codes {
        diesel::insert_into(totp_recovery_codes::table)
            .values((
                totp_recovery_codes::user_id.eq(user_id),
                totp_recovery_codes::code_hash.eq(hash(user_id, code)),
                totp_recovery_codes::created_at.eq(created_at),
            ))
            .execute(conn)?;
    }
    Ok(RecoveryCodes { codes: codes.iter().map(|c| shown(c)).collect(), created_at })
}

/// Uses one of the account's codes, if `typed` is one not used yet, and tells the owner it was
/// used (if it was not them, someone has their password and a code). Marking it used and
/// finding it are one statement, so of two sign-ins with the same code only one succeeds.
pub fn redeem(conn: &mut DbConn, mailer: &Mailer, user: &User, typed: &str) -> AppResult<bool> {
    let Some(code) = normal_form(typed) else { return Ok(false) };
    let code_hash = hash(&user.id, &code);
    let used_at = now();
    let used = diesel::update(
        totp_recovery_codes::table
            .filter(totp_recovery_codes::user_id.eq(&user.id))
            .filter(totp_recovery_codes::code_hash.eq(&code_hash))
            .filter(totp_recovery_codes::used_at.is_null()),
    )
    .set(totp_recovery_codes::used_at.eq(Some(used_at)))
    .execute(conn)?;
    if used != 1 {
        return Ok(false);
    }
    let remaining = state(conn, &user.id)?.remaining;
    let notice = Notice::RecoveryCodeUsed { used_at, remaining };
    let email = mailer.to_user(user, &notice)?.once(format!("recovery_code_used:{}:{code_hash}", user.id));
    crate::mail::outbox::enqueue(conn, email)?;
    Ok(true)
}

pub fn state(conn: &mut DbConn, user_id: &str) -> AppResult<RecoveryState> {
    let unused = totp_recovery_codes::table
        .filter(totp_recovery_codes::user_id.eq(user_id))
        .filter(totp_recovery_codes::used_at.is_null());
    let remaining = unused.count().get_result(conn)?;
    let created_at = totp_recovery_codes::table
        .filter(totp_recovery_codes::user_id.eq(user_id))
        .select(diesel::dsl::max(totp_recovery_codes::created_at))
        .first::<Option<NaiveDateTime>>(conn)?;
    Ok(RecoveryState { remaining, created_at })
}

/// Ends every code of the account (two-factor sign-in turned off, new codes made).
pub fn discard(conn: &mut DbConn, user_id: &str) -> AppResult<()> {
    diesel::delete(totp_recovery_codes::table.filter(totp_recovery_codes::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_as_people_type_them() {
        let code = new_code();
        assert_eq!(code.len(), LENGTH);
        let printed = shown(&code);
        assert_eq!(normal_form(&printed).as_deref(), Some(code.as_str()));
        assert_eq!(normal_form(&printed.to_lowercase()).as_deref(), Some(code.as_str()));
        // Full-width letters and digits, and spaces instead of hyphens.
        let wide: String =
            printed.chars().map(|c| if c == '-' { '　' } else { char::from_u32(c as u32 + 0xFEE0).unwrap() }).collect();
        assert_eq!(normal_form(&wide).as_deref(), Some(code.as_str()));
        for not_a_code in ["", "123456", "ABCD-EFGH-JKL", "ABCD-EFGH-JKL0", "ABCD-EFGH-JKLMN"] {
            assert_eq!(normal_form(not_a_code), None, "{not_a_code}");
        }
    }
}
