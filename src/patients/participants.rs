//! The patient, family members and the key person (キーパーソン) in a patient's circle. They take
//! part through a relation of their own, never as care-team members: they read and post in the
//! family channel, the patient and the key person approve who joins the team and read who opened
//! the record, and nothing else of the record is theirs by default (`access::Relation::Participant`).
//!
//! The lead or the care manager invites one by e-mail. The invitation is the participant's row,
//! with a one-time token (32 random bytes, kept only as their SHA-256, valid seven days). Whoever
//! has no account yet takes it up by choosing a name and a password, which makes an account of
//! no organisation; an existing account of no organisation with that address signs in and joins.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::Patient;
use crate::api;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::tokens::{random_token, sha256_hex};
use crate::auth::CurrentUser;
use crate::db::schema::{patient_participants, users as user_rows};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::{self, Mailer, Notice};
use crate::users::{self, User};
use crate::vocab::{AccountRole, Locale, ParticipantRole, ParticipantStatus, Profession};

/// How long an invitation can be taken up.
pub const VALID_DAYS: i64 = 7;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = patient_participants)]
pub struct Participant {
    pub id: String,
    pub patient_id: String,
    pub user_id: Option<String>,
    pub email: String,
    pub role: ParticipantRole,
    pub relationship: Option<String>,
    pub status: ParticipantStatus,
    pub token_hash: String,
    pub expires_at: NaiveDateTime,
    pub invited_by: String,
    pub created_at: NaiveDateTime,
    pub joined_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub ended_by: Option<String>,
}

impl Participant {
    /// The state as answered: an invitation past its expiry is expired.
    pub fn state(&self, at: NaiveDateTime) -> ParticipantStatus {
        if self.status == ParticipantStatus::Invited && self.expires_at <= at {
            ParticipantStatus::Expired
        } else {
            self.status
        }
    }
}

/// A participant as the team and the participants see them (never the token).
#[derive(Debug, Serialize)]
pub struct ParticipantView {
    pub id: String,
    pub patient_id: String,
    pub user_id: Option<String>,
    /// The name the person chose; `None` until they take the invitation up.
    pub name: Option<String>,
    pub email: String,
    pub role: ParticipantRole,
    pub relationship: Option<String>,
    pub status: ParticipantStatus,
    pub invited_by: String,
    #[serde(serialize_with = "api::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc")]
    pub expires_at: NaiveDateTime,
    #[serde(serialize_with = "api::utc_opt")]
    pub joined_at: Option<NaiveDateTime>,
    #[serde(serialize_with = "api::utc_opt")]
    pub ended_at: Option<NaiveDateTime>,
}

fn view(p: Participant, name: Option<String>) -> ParticipantView {
    ParticipantView {
        status: p.state(now()),
        id: p.id,
        patient_id: p.patient_id,
        user_id: p.user_id,
        name,
        email: p.email,
        role: p.role,
        relationship: p.relationship,
        invited_by: p.invited_by,
        created_at: p.created_at,
        expires_at: p.expires_at,
        joined_at: p.joined_at,
        ended_at: p.ended_at,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    pub role: ParticipantRole,
    /// 続柄 as the family says it (長女, 妻); optional.
    pub relationship: Option<String>,
}

/// Taking an invitation up without an account: the name and password of the new account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub token: String,
    pub name: String,
    pub password: String,
    pub locale: Option<Locale>,
}

pub fn find(conn: &mut DbConn, patient_id: &str, id: &str) -> AppResult<Option<Participant>> {
    Ok(patient_participants::table
        .filter(patient_participants::id.eq(id))
        .filter(patient_participants::patient_id.eq(patient_id))
        .select(Participant::as_select())
        .first(conn)
        .optional()?)
}

/// The participant an unexpired, untaken invitation token belongs to.
pub fn invited_by_token(conn: &mut DbConn, presented: &str) -> AppResult<Option<Participant>> {
    if !crate::auth::tokens::is_link_token(presented) {
        // No link ever carries such a token.
        return Ok(None);
    }
    Ok(patient_participants::table
        .filter(patient_participants::token_hash.eq(sha256_hex(presented)))
        .filter(patient_participants::status.eq(ParticipantStatus::Invited))
        .filter(patient_participants::expires_at.gt(now()))
        .select(Participant::as_select())
        .first(conn)
        .optional()?)
}

/// The account's active participation in a patient's circle, if any.
pub fn active(conn: &mut DbConn, patient_id: &str, user_id: &str) -> AppResult<Option<Participant>> {
    Ok(patient_participants::table
        .filter(patient_participants::patient_id.eq(patient_id))
        .filter(patient_participants::user_id.eq(user_id))
        .filter(patient_participants::status.eq(ParticipantStatus::Active))
        .select(Participant::as_select())
        .first(conn)
        .optional()?)
}

/// The accounts in service that speak for the patient now: the patient and the key person who
/// take part. They approve who joins the team.
pub fn approvers(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<String>> {
    let ids: Vec<Option<String>> = patient_participants::table
        .filter(patient_participants::patient_id.eq(patient_id))
        .filter(patient_participants::status.eq(ParticipantStatus::Active))
        .filter(patient_participants::role.eq_any([ParticipantRole::Patient, ParticipantRole::KeyPerson]))
        .select(patient_participants::user_id)
        .load(conn)?;
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    users::in_service(conn, &ids)
}

/// The accounts that take part in the patient's circle now.
pub fn active_user_ids(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<String>> {
    let ids: Vec<Option<String>> = patient_participants::table
        .filter(patient_participants::patient_id.eq(patient_id))
        .filter(patient_participants::status.eq(ParticipantStatus::Active))
        .select(patient_participants::user_id)
        .load(conn)?;
    Ok(ids.into_iter().flatten().collect())
}

/// A patient's participants, invited, active and ended, newest first.
pub fn list(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<ParticipantView>> {
    let rows: Vec<(Participant, Option<String>)> = patient_participants::table
        .left_join(user_rows::table.on(user_rows::id.nullable().eq(patient_participants::user_id)))
        .filter(patient_participants::patient_id.eq(patient_id))
        .order((patient_participants::created_at.desc(), patient_participants::id.desc()))
        .select((Participant::as_select(), user_rows::name.nullable()))
        .load(conn)?;
    Ok(rows.into_iter().map(|(p, name)| view(p, name)).collect())
}

fn reread(conn: &mut DbConn, id: &str) -> AppResult<ParticipantView> {
    let p: Participant = patient_participants::table.find(id).select(Participant::as_select()).first(conn)?;
    let name = match &p.user_id {
        Some(u) => users::find(conn, u)?.map(|u| u.name),
        None => None,
    };
    Ok(view(p, name))
}

/// Records the invitation (the caller was allowed by `access::invite_participant`), audited,
/// and queues its e-mail in the same transaction. 409 when the address already takes part or
/// has an open invitation.
pub fn invite(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient: &Patient,
    email: &str,
    role: ParticipantRole,
    relationship: Option<String>,
) -> AppResult<ParticipantView> {
    let t = now();
    let open: i64 = patient_participants::table
        .filter(patient_participants::patient_id.eq(&patient.id))
        .filter(patient_participants::email.eq(email))
        .filter(patient_participants::status.eq(ParticipantStatus::Active).or(
            patient_participants::status.eq(ParticipantStatus::Invited).and(patient_participants::expires_at.gt(t)),
        ))
        .count()
        .get_result(conn)?;
    if open > 0 {
        return Err(AppError::conflict(
            "このメールアドレスの方は、すでに参加しているか、招待中です。",
            "This address already takes part, or has an open invitation.",
        ));
    }
    let token = random_token(32);
    let token_hash = sha256_hex(&token);
    let participant = Participant {
        id: new_id(),
        patient_id: patient.id.clone(),
        user_id: None,
        email: email.to_string(),
        role,
        relationship,
        status: ParticipantStatus::Invited,
        token_hash: token_hash.clone(),
        expires_at: t + Duration::days(VALID_DAYS),
        invited_by: me.id.clone(),
        created_at: t,
        joined_at: None,
        ended_at: None,
        ended_by: None,
    };
    diesel::insert_into(patient_participants::table).values(&participant).execute(conn)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::Participant, Some(&participant.id), Some(&patient.id))
            .detail(format!("invited: {}", role.as_str())),
    )?;
    let notice = Notice::ParticipantInvitation {
        token,
        expires_at: participant.expires_at,
        role,
        inviter: super::team::person_kind(conn, me.profession, me.organization_id.as_deref())?,
        patient: patient.email_label(mailer.patient_label()),
    };
    let locale = match users::find_by_email(conn, email)? {
        Some(u) if u.active => u.locale,
        _ => Locale::Ja,
    };
    let message = mailer.to_address(email, locale, &notice)?;
    mail::outbox::enqueue(
        conn,
        message.once(format!("participant_invitation:{token_hash}")).about_patient(&patient.id),
    )?;
    reread(conn, &participant.id)
}

/// Claims an invitation for an account, once: of two answers at once only one wins.
fn claim(conn: &mut DbConn, participant: &Participant, user_id: &str) -> AppResult<()> {
    let t = now();
    let n = diesel::update(
        patient_participants::table
            .filter(patient_participants::id.eq(&participant.id))
            .filter(patient_participants::status.eq(ParticipantStatus::Invited))
            .filter(patient_participants::expires_at.gt(t)),
    )
    .set((
        patient_participants::status.eq(ParticipantStatus::Active),
        patient_participants::user_id.eq(Some(user_id)),
        patient_participants::joined_at.eq(Some(t)),
    ))
    .execute(conn)?;
    if n == 1 {
        Ok(())
    } else {
        Err(invalid_token())
    }
}

pub fn invalid_token() -> AppError {
    AppError::field(
        "token",
        "invalid_or_expired",
        "この招待のリンクは無効か、有効期限が切れています。招待した方にあらためて招待を依頼してください。",
        "This invitation link is not valid or has expired. Please ask the person who invited you for a new one.",
    )
}

/// Takes an invitation up with a new account of no organisation (the password hashed before,
/// outside the transaction). 409 when the address has an account in use: sign in and join.
pub fn register(
    conn: &mut DbConn,
    participant: &Participant,
    name: &str,
    locale: Locale,
    password_hash: String,
    ip: Option<String>,
) -> AppResult<(User, ParticipantView)> {
    if users::email_taken(conn, &participant.email)? {
        return Err(AppError::conflict(
            "このメールアドレスのアカウントがすでにあります。サインインしてから招待を承諾してください。",
            "An account with this address exists already. Sign in, then accept the invitation.",
        ));
    }
    let user = users::insert(
        conn,
        users::NewUser {
            organization_id: None,
            email: &participant.email,
            name,
            name_kana: None,
            profession: Profession::Layperson,
            role: AccountRole::Member,
            locale,
            password_hash,
        },
    )?;
    claim(conn, participant, &user.id)?;
    audit::append(
        conn,
        Some(&user.id),
        ip,
        Event::new(Action::Create, Resource::Participant, Some(&participant.id), Some(&participant.patient_id))
            .detail("joined with a new account"),
    )?;
    let view = reread(conn, &participant.id)?;
    Ok((user, view))
}

/// The patients whose circle the account takes part in now, with its role in each.
pub fn of_user(conn: &mut DbConn, user_id: &str) -> AppResult<Vec<(String, ParticipantRole)>> {
    Ok(patient_participants::table
        .filter(patient_participants::user_id.eq(user_id))
        .filter(patient_participants::status.eq(ParticipantStatus::Active))
        .order(patient_participants::joined_at.desc())
        .select((patient_participants::patient_id, patient_participants::role))
        .load(conn)?)
}

/// Takes an invitation up as the signed-in account (`access::participant_joining` decided it
/// may).
pub fn join(conn: &mut DbConn, me: &CurrentUser, participant: &Participant) -> AppResult<ParticipantView> {
    claim(conn, participant, &me.id)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Participant, Some(&participant.id), Some(&participant.patient_id))
            .detail("joined"),
    )?;
    reread(conn, &participant.id)
}

/// Ends a participation or an open invitation (the caller was allowed by
/// `access::participants`), audited; 409 when it has ended already.
pub fn end(conn: &mut DbConn, me: &CurrentUser, participant: &Participant) -> AppResult<ParticipantView> {
    let t = now();
    let n = diesel::update(
        patient_participants::table
            .filter(patient_participants::id.eq(&participant.id))
            .filter(patient_participants::status.ne(ParticipantStatus::Ended)),
    )
    .set((
        patient_participants::status.eq(ParticipantStatus::Ended),
        patient_participants::ended_at.eq(Some(t)),
        patient_participants::ended_by.eq(Some(&me.id)),
    ))
    .execute(conn)?;
    if n != 1 {
        return Err(AppError::conflict("この参加はすでに終了しています。", "This participation has ended already."));
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Participant, Some(&participant.id), Some(&participant.patient_id))
            .detail("ended"),
    )?;
    reread(conn, &participant.id)
}
