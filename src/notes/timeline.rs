//! The patient's timeline (`GET /patients/{id}/timeline`): one time-ordered stream of what
//! happened around a patient — notes, care-team changes, consent changes, emergency-access
//! grants (the team learns of a break-glass read this way), deterioration flags and
//! discharge-coordination events — newest first, cursor-paginated.
//!
//! Each source is one function that returns its newest items after the cursor; [`page`]
//! merges them in Rust. A new source is one more function in [`SOURCES`] and, if it needs
//! details of its own, one more optional member of [`Item`].
//!
//! Order: `at` descending, then `type`, then `id` (both descending), so that items at the same
//! instant still have one fixed order and the cursor `(at, type, id)` never skips or repeats one.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::news2::Band;
use super::{current_notes, Note, Version};
use crate::api;
use crate::db::schema::{
    allergy_versions, care_team_members, consents, discharge_events, emergency_access, flags,
    medication_reconciliations, medication_versions, note_versions, users,
};
use crate::db::DbConn;
use crate::error::{AppResult, Lang};
use crate::patients::consents::Consent;
use crate::patients::emergency::Grant;
use crate::patients::team::Member;
use crate::vocab::{FlagSource, NoteKind, TeamRole};

pub const NOTE: &str = "note";
pub const TEAM_MEMBER_ADDED: &str = "team_member_added";
pub const TEAM_MEMBER_ENDED: &str = "team_member_ended";
pub const CONSENT_RECORDED: &str = "consent_recorded";
pub const CONSENT_REVOKED: &str = "consent_revoked";
pub const EMERGENCY_ACCESS: &str = "emergency_access";
pub const FLAG_RAISED: &str = "flag_raised";
pub const DISCHARGE_EVENT: &str = "discharge_event";
pub const ATTACHMENT_ADDED: &str = "attachment_added";
pub const MEDICATION_CHANGED: &str = "medication_changed";
pub const MEDICATION_RECONCILED: &str = "medication_reconciled";
pub const ALLERGY_CHANGED: &str = "allergy_changed";
pub const JOINING_DECIDED: &str = "joining_decided";

/// Characters of a note's text shown on the timeline.
const EXCERPT_CHARS: usize = 80;

/// Details of a note item.
#[derive(Debug, Clone, Serialize)]
pub struct NoteDetails {
    pub kind: NoteKind,
    pub version: i32,
    pub amended: bool,
    pub news2_total: Option<i32>,
    pub news2_band: Option<Band>,
}

/// Details of a care-team item: whose membership.
#[derive(Debug, Clone, Serialize)]
pub struct MemberDetails {
    pub member_id: String,
    pub user_id: String,
    pub name: String,
    pub role: TeamRole,
}

/// Details of a file item: what it is, where it belongs, where to fetch it.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentDetails {
    pub note_id: Option<String>,
    pub case_id: Option<String>,
    pub file_name: String,
    pub content_type: String,
    pub content_url: String,
    pub thumbnail_url: Option<String>,
}

/// One thing that happened. `summary` is for people (Japanese, `summary_en` in English).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "api::utc")]
    pub at: NaiveDateTime,
    /// The record the item comes from: the note, care-team membership, consent or grant.
    pub id: String,
    /// Who did it.
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub summary: String,
    pub summary_en: String,
    pub note: Option<NoteDetails>,
    pub member: Option<MemberDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentDetails>,
}

impl Item {
    fn new(kind: &'static str, at: NaiveDateTime, id: String, summary: (String, String)) -> Item {
        Item {
            kind,
            at,
            id,
            actor_id: None,
            actor_name: None,
            summary: summary.0,
            summary_en: summary.1,
            note: None,
            member: None,
            attachment: None,
        }
    }

    fn by(mut self, actor: Option<(String, String)>) -> Item {
        if let Some((id, name)) = actor {
            self.actor_id = Some(id);
            self.actor_name = Some(name);
        }
        self
    }

    pub fn position(&self) -> Position {
        Position { at: self.at, kind: self.kind.to_string(), id: self.id.clone() }
    }

    /// Newest first: `at`, then `type`, then `id`, all descending.
    fn newest_first(a: &Item, b: &Item) -> Ordering {
        (b.at, b.kind, &b.id).cmp(&(a.at, a.kind, &a.id))
    }
}

/// Where a page ends: the last item's `(at, type, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: NaiveDateTime,
    pub kind: String,
    pub id: String,
}

impl Position {
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", api::format_utc(&self.at), self.kind, self.id)
    }

    pub fn decode(cursor: &str) -> Option<Position> {
        let mut parts = cursor.splitn(3, '|');
        let at = chrono::DateTime::parse_from_rfc3339(parts.next()?).ok()?.naive_utc();
        let kind = parts.next()?.to_string();
        let id = parts.next()?.to_string();
        (!kind.is_empty() && !id.is_empty()).then_some(Position { at, kind, id })
    }
}

/// Which items of one source come after the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// No cursor: from the newest.
    Open,
    /// The source's type sorts after the cursor's: strictly earlier items only.
    Before(NaiveDateTime),
    /// The source's type sorts before the cursor's: items at the cursor's instant come after it.
    AtOrBefore(NaiveDateTime),
    /// Same type: earlier items, or items at the same instant with a smaller id.
    Tie(NaiveDateTime, String),
}

impl Bound {
    pub fn for_source(after: Option<&Position>, kind: &str) -> Bound {
        match after {
            None => Bound::Open,
            Some(p) => match kind.cmp(p.kind.as_str()) {
                Ordering::Equal => Bound::Tie(p.at, p.id.clone()),
                Ordering::Less => Bound::AtOrBefore(p.at),
                Ordering::Greater => Bound::Before(p.at),
            },
        }
    }
}

/// Applies a [`Bound`] to a boxed query over the source's time and id columns.
macro_rules! bounded {
    ($q:expr, $bound:expr, $at:expr, $id:expr) => {
        match $bound {
            Bound::Open => $q,
            Bound::Before(t) => $q.filter($at.lt(t)),
            Bound::AtOrBefore(t) => $q.filter($at.le(t)),
            Bound::Tie(t, id) => $q.filter($at.lt(t).or($at.eq(t).and($id.lt(id)))),
        }
    };
}

/// People's names, looked up once per request.
#[derive(Default)]
pub struct Names(HashMap<String, String>);

impl Names {
    fn of(&mut self, conn: &mut DbConn, user_id: &str) -> AppResult<String> {
        if let Some(n) = self.0.get(user_id) {
            return Ok(n.clone());
        }
        let name: String = users::table.find(user_id).select(users::name).first(conn)?;
        self.0.insert(user_id.to_string(), name.clone());
        Ok(name)
    }

    fn actor(&mut self, conn: &mut DbConn, user_id: Option<&str>) -> AppResult<Option<(String, String)>> {
        match user_id {
            None => Ok(None),
            Some(id) => Ok(Some((id.to_string(), self.of(conn, id)?))),
        }
    }
}

/// What each source is asked for: the patient's newest `limit` items after the cursor.
pub struct Window<'a> {
    pub patient_id: &'a str,
    pub after: Option<&'a Position>,
    pub limit: i64,
}

/// One source of timeline items: its items in the window.
pub type Source = fn(&mut DbConn, &mut Names, &Window<'_>) -> AppResult<Vec<Item>>;

/// Every source, merged into one stream.
pub const SOURCES: &[Source] = &[
    notes,
    team_members_added,
    team_members_ended,
    consents_recorded,
    consents_revoked,
    emergency_access_grants,
    flags_raised,
    discharge_events_of,
    attachments_added,
    medication_versions_of,
    medication_reconciliations_of,
    allergy_versions_of,
    joining_decisions,
];

/// The rows of one source in a window, as every source reads them: the patient's rows (`$q`),
/// bounded after the cursor on the source's time and id columns, newest first.
macro_rules! newest {
    ($conn:expr, $window:expr, $source:expr, $q:expr, ($at:expr, $id:expr), $select:expr) => {{
        let q = $q.into_boxed();
        bounded!(q, Bound::for_source($window.after, $source), $at, $id)
            .order(($at.desc(), $id.desc()))
            .limit($window.limit)
            .select($select)
            .load($conn)
    }};
}

fn notes(conn: &mut DbConn, _: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<(Note, Version, String)> = newest!(
        conn,
        w,
        NOTE,
        current_notes!().filter(note_versions::patient_id.eq(w.patient_id.to_string())),
        (note_versions::occurred_at, note_versions::note_id),
        (Note::as_select(), Version::as_select(), users::name)
    )?;
    rows.into_iter()
        .map(|(note, v, author_name)| {
            let kind = note.kind;
            let text =
                if v.text.trim().is_empty() { v.cautions_for_team.clone().unwrap_or_default() } else { v.text.clone() };
            let excerpt = super::excerpt(&text, EXCERPT_CHARS);
            let summary =
                (format!("{}: {excerpt}", kind.label(Lang::Ja)), format!("{}: {excerpt}", kind.label(Lang::En)));
            let mut item = Item::new(NOTE, v.occurred_at, note.id.clone(), summary)
                .by(Some((note.author_id.clone(), author_name)));
            item.note = Some(NoteDetails {
                kind: note.kind,
                version: v.version,
                amended: v.version > 1,
                news2_total: v.news2_total,
                news2_band: v.news2_band,
            });
            Ok(item)
        })
        .collect()
}

/// Files added to the patient's notes and cases, not those entered in error.
fn attachments_added(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    use crate::db::schema::{attachment_errors, attachments};
    type Row = (String, Option<String>, Option<String>, String, String, Option<String>, String, NaiveDateTime);
    let rows: Vec<Row> = newest!(
        conn,
        w,
        ATTACHMENT_ADDED,
        attachments::table.filter(attachments::patient_id.eq(w.patient_id.to_string())).filter(diesel::dsl::not(
            diesel::dsl::exists(attachment_errors::table.filter(attachment_errors::attachment_id.eq(attachments::id)))
        )),
        (attachments::created_at, attachments::id),
        (
            attachments::id,
            attachments::note_id,
            attachments::case_id,
            attachments::file_name,
            attachments::content_type,
            attachments::thumbnail_key,
            attachments::uploaded_by,
            attachments::created_at,
        )
    )?;
    rows.into_iter()
        .map(|(id, note_id, case_id, file_name, content_type, thumbnail_key, uploaded_by, at)| {
            let photo = content_type.starts_with("image/");
            let summary = if photo {
                (format!("写真を添付しました: {file_name}"), format!("Added a photo: {file_name}"))
            } else {
                (format!("文書を添付しました: {file_name}"), format!("Added a document: {file_name}"))
            };
            let details = AttachmentDetails {
                note_id,
                case_id,
                content_url: format!("/api/v1/attachments/{id}/content"),
                thumbnail_url: thumbnail_key.map(|_| format!("/api/v1/attachments/{id}/thumbnail")),
                file_name,
                content_type,
            };
            let mut item = Item::new(ATTACHMENT_ADDED, at, id, summary).by(names.actor(conn, Some(&uploaded_by))?);
            item.attachment = Some(details);
            Ok(item)
        })
        .collect()
}

/// A care-team item of membership `m`: whose membership, and the summary told with that
/// person's name.
fn member_item(
    conn: &mut DbConn,
    names: &mut Names,
    (kind, at): (&'static str, NaiveDateTime),
    m: &Member,
    actor_id: Option<&str>,
    summary: impl FnOnce(&str) -> (String, String),
) -> AppResult<Item> {
    let member = MemberDetails {
        member_id: m.id.clone(),
        user_id: m.user_id.clone(),
        name: names.of(conn, &m.user_id)?,
        role: m.role,
    };
    let mut item = Item::new(kind, at, m.id.clone(), summary(&member.name)).by(names.actor(conn, actor_id)?);
    item.member = Some(member);
    Ok(item)
}

fn team_members_added(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<Member> = newest!(
        conn,
        w,
        TEAM_MEMBER_ADDED,
        care_team_members::table.filter(care_team_members::patient_id.eq(w.patient_id.to_string())),
        (care_team_members::created_at, care_team_members::id),
        Member::as_select()
    )?;
    rows.iter()
        .map(|m| {
            member_item(conn, names, (TEAM_MEMBER_ADDED, m.created_at), m, Some(&m.added_by), |name| {
                (
                    format!("{name}さんが{}としてケアチームに加わりました。", m.role.label(Lang::Ja)),
                    format!("{name} joined the care team as {}.", m.role.label(Lang::En).to_lowercase()),
                )
            })
        })
        .collect()
}

fn team_members_ended(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<Member> = newest!(
        conn,
        w,
        TEAM_MEMBER_ENDED,
        care_team_members::table
            .filter(care_team_members::patient_id.eq(w.patient_id.to_string()))
            .filter(care_team_members::ended_at.is_not_null()),
        (care_team_members::ended_at, care_team_members::id),
        Member::as_select()
    )?;
    rows.iter()
        .filter_map(|m| m.ended_at.map(|at| (m, at)))
        .map(|(m, at)| {
            let on = m.ended_on.map(|d| d.to_string()).unwrap_or_default();
            member_item(conn, names, (TEAM_MEMBER_ENDED, at), m, m.ended_by.as_deref(), |name| {
                (
                    format!("{name}さん({})がケアチームを離れました({on})。", m.role.label(Lang::Ja)),
                    format!("{name} ({}) left the care team ({on}).", m.role.label(Lang::En).to_lowercase()),
                )
            })
        })
        .collect()
}

fn consents_recorded(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<Consent> = newest!(
        conn,
        w,
        CONSENT_RECORDED,
        consents::table.filter(consents::patient_id.eq(w.patient_id.to_string())),
        (consents::created_at, consents::id),
        Consent::as_select()
    )?;
    rows.iter()
        .map(|c| {
            let (scope_ja, from_ja) = (c.scope.label(Lang::Ja), c.obtained_from.label(Lang::Ja));
            let (scope_en, from_en) =
                (c.scope.label(Lang::En).to_lowercase(), c.obtained_from.label(Lang::En).to_lowercase());
            let summary = (
                format!("情報共有への同意({scope_ja}、{from_ja}から、{})が記録されました。", c.obtained_on),
                format!("Consent to share with the {scope_en} (from the {from_en}, {}) was recorded.", c.obtained_on),
            );
            Ok(Item::new(CONSENT_RECORDED, c.created_at, c.id.clone(), summary)
                .by(names.actor(conn, Some(&c.obtained_by))?))
        })
        .collect()
}

fn consents_revoked(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<Consent> = newest!(
        conn,
        w,
        CONSENT_REVOKED,
        consents::table
            .filter(consents::patient_id.eq(w.patient_id.to_string()))
            .filter(consents::revoked_at.is_not_null()),
        (consents::revoked_at, consents::id),
        Consent::as_select()
    )?;
    rows.iter()
        .filter_map(|c| c.revoked_at.map(|at| (c, at)))
        .map(|(c, at)| {
            let reason = c.revoke_reason.clone().unwrap_or_default();
            let summary = (
                format!("情報共有への同意が撤回されました。理由: {reason}"),
                format!("Consent to share was revoked. Reason: {reason}"),
            );
            Ok(Item::new(CONSENT_REVOKED, at, c.id.clone(), summary).by(names.actor(conn, c.revoked_by.as_deref())?))
        })
        .collect()
}

fn emergency_access_grants(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<Grant> = newest!(
        conn,
        w,
        EMERGENCY_ACCESS,
        emergency_access::table.filter(emergency_access::patient_id.eq(w.patient_id.to_string())),
        (emergency_access::granted_at, emergency_access::id),
        Grant::as_select()
    )?;
    rows.iter()
        .map(|g| {
            let actor = names.actor(conn, Some(&g.user_id))?;
            let name = actor.as_ref().map(|a| a.1.clone()).unwrap_or_default();
            let until = api::format_utc(&g.expires_at);
            let summary = (
                format!("緊急アクセス(ブレークグラス): ケアチーム外の{name}さんが記録を閲覧できるようになりました({until} まで)。理由: {}", g.reason),
                format!("Emergency access (break-glass): {name}, who is not on the care team, may read the record until {until}. Reason: {}", g.reason),
            );
            Ok(Item::new(EMERGENCY_ACCESS, g.granted_at, g.id.clone(), summary).by(actor))
        })
        .collect()
}

fn flags_raised(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<crate::flags::Flag> = newest!(
        conn,
        w,
        FLAG_RAISED,
        flags::table.filter(flags::patient_id.eq(w.patient_id.to_string())),
        (flags::raised_at, flags::id),
        crate::flags::Flag::as_select()
    )?;
    rows.iter()
        .map(|f| {
            let (sev_ja, sev_en) = (f.severity.label(Lang::Ja), f.severity.as_str());
            let (how_ja, how_en) = if f.source == FlagSource::News2 {
                ("バイタルサインから自動で", "automatically from vital signs")
            } else {
                ("", "by a team member")
            };
            let summary = (
                format!("急性増悪フラグ({sev_ja})が{how_ja}立てられました。状態: {}", f.status.label(Lang::Ja)),
                format!("A deterioration flag ({sev_en}) was raised {how_en}. Status: {}", f.status.label(Lang::En)),
            );
            Ok(Item::new(FLAG_RAISED, f.raised_at, f.id.clone(), summary)
                .by(names.actor(conn, f.raised_by.as_deref())?))
        })
        .collect()
}

fn discharge_events_of(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<(String, String, NaiveDateTime, String)> = newest!(
        conn,
        w,
        DISCHARGE_EVENT,
        discharge_events::table.filter(discharge_events::patient_id.eq(w.patient_id.to_string())),
        (discharge_events::at, discharge_events::id),
        (discharge_events::id, discharge_events::kind, discharge_events::at, discharge_events::actor_id)
    )?;
    rows.into_iter()
        .map(|(id, kind, at, actor)| {
            let summary = match kind.as_str() {
                "case_opened" => {
                    ("入退院調整が開始されました(入院)。", "A discharge-coordination case was opened (admission).")
                }
                "patient_discharged" => (
                    "退院しました。退院後の期限が始まります。",
                    "The patient was discharged; post-discharge deadlines now run.",
                ),
                _ => ("入退院調整のタスクが割り当てられました。", "A discharge-coordination task was assigned."),
            };
            Ok(Item::new(DISCHARGE_EVENT, at, id, (summary.0.to_string(), summary.1.to_string()))
                .by(names.actor(conn, Some(&actor))?))
        })
        .collect()
}

/// What a version of a care record did: added (version 1), changed, or marked entered in error.
fn care_step(version: i32, entered_in_error: bool) -> (&'static str, &'static str) {
    match (version, entered_in_error) {
        (_, true) => ("入力誤り", "entered in error"),
        (1, _) => ("追加", "added"),
        _ => ("変更", "changed"),
    }
}

/// Each version of a medication: added, changed (dose, status …) or marked entered in error.
fn medication_versions_of(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<crate::care::medications::Version> = newest!(
        conn,
        w,
        MEDICATION_CHANGED,
        medication_versions::table.filter(medication_versions::patient_id.eq(w.patient_id.to_string())),
        (medication_versions::recorded_at, medication_versions::id),
        crate::care::medications::Version::as_select()
    )?;
    rows.into_iter()
        .map(|v| {
            let eie = v.status == crate::care::MedicationStatus::EnteredInError;
            let (ja, en) = care_step(v.version, eie);
            let what = [Some(v.drug_name.as_str()), v.dose.as_deref(), v.timing.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let summary = (
                format!("服薬({ja}): {what} — {}", v.status.label(Lang::Ja)),
                format!("Medication {en}: {what} — {}", v.status.label(Lang::En)),
            );
            Ok(Item::new(MEDICATION_CHANGED, v.recorded_at, v.id.clone(), summary)
                .by(names.actor(conn, Some(&v.recorded_by))?))
        })
        .collect()
}

/// A pharmacist's check of the whole list.
fn medication_reconciliations_of(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<crate::care::medications::Reconciliation> = newest!(
        conn,
        w,
        MEDICATION_RECONCILED,
        medication_reconciliations::table.filter(medication_reconciliations::patient_id.eq(w.patient_id.to_string())),
        (medication_reconciliations::recorded_at, medication_reconciliations::id),
        crate::care::medications::Reconciliation::as_select()
    )?;
    rows.into_iter()
        .map(|r| {
            let summary = (
                format!("薬剤師が服薬リスト({}剤)を{}に照合しました。", r.medication_count, r.checked_on),
                format!(
                    "A pharmacist reconciled the medication list ({} drugs) on {}.",
                    r.medication_count, r.checked_on
                ),
            );
            Ok(Item::new(MEDICATION_RECONCILED, r.recorded_at, r.id.clone(), summary)
                .by(names.actor(conn, Some(&r.checked_by))?))
        })
        .collect()
}

/// Each version of an allergy or contraindication.
fn allergy_versions_of(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    let rows: Vec<crate::care::allergies::Version> = newest!(
        conn,
        w,
        ALLERGY_CHANGED,
        allergy_versions::table.filter(allergy_versions::patient_id.eq(w.patient_id.to_string())),
        (allergy_versions::recorded_at, allergy_versions::id),
        crate::care::allergies::Version::as_select()
    )?;
    rows.into_iter()
        .map(|v| {
            let eie = v.verification_status == crate::care::AllergyVerification::EnteredInError;
            let (ja, en) = care_step(v.version, eie);
            let summary = (
                format!("アレルギー・禁忌({ja}): {} — {}", v.substance, v.verification_status.label(Lang::Ja)),
                format!("Allergy {en}: {} — {}", v.substance, v.verification_status.label(Lang::En)),
            );
            Ok(Item::new(ALLERGY_CHANGED, v.recorded_at, v.id.clone(), summary)
                .by(names.actor(conn, Some(&v.recorded_by))?))
        })
        .collect()
}

/// A page of the patient's timeline after `after`: `limit + 1` items at most, newest first.
pub fn page(conn: &mut DbConn, patient_id: &str, after: Option<&Position>, limit: i64) -> AppResult<Vec<Item>> {
    let mut names = Names::default();
    let window = Window { patient_id, after, limit: limit + 1 };
    let mut items = Vec::new();
    for source in SOURCES {
        items.extend(source(conn, &mut names, &window)?);
    }
    items.sort_by(Item::newest_first);
    items.truncate(limit as usize + 1);
    Ok(items)
}

/// The patient's or key person's approvals and refusals of who joins the team.
fn joining_decisions(conn: &mut DbConn, names: &mut Names, w: &Window<'_>) -> AppResult<Vec<Item>> {
    use crate::db::schema::care_team_invitations as i;
    type Row =
        (String, Option<String>, Option<String>, TeamRole, crate::vocab::InvitationStatus, Option<NaiveDateTime>);
    let rows: Vec<Row> = newest!(
        conn,
        w,
        JOINING_DECIDED,
        i::table.filter(i::patient_id.eq(w.patient_id.to_string())).filter(i::decided_at.is_not_null()),
        (i::decided_at, i::id),
        (i::id, i::responded_by, i::decided_by, i::role, i::status, i::decided_at)
    )?;
    rows.into_iter()
        .filter_map(|(id, invitee, by, role, status, at)| at.map(|at| (id, invitee, by, role, status, at)))
        .map(|(id, invitee, by, role, status, at)| {
            let name = match &invitee {
                Some(u) => names.of(conn, u)?,
                None => String::new(),
            };
            let (role_ja, role_en) = (role.label(Lang::Ja), role.label(Lang::En).to_lowercase());
            let summary = if status == crate::vocab::InvitationStatus::Refused {
                (
                    format!("{name}さんの{role_ja}としての参加を、ご本人・キーパーソンが承認しませんでした。"),
                    format!("The patient or key person refused {name} joining as {role_en}."),
                )
            } else {
                (
                    format!("{name}さんの{role_ja}としての参加を、ご本人・キーパーソンが承認しました。"),
                    format!("The patient or key person approved {name} joining as {role_en}."),
                )
            };
            Ok(Item::new(JOINING_DECIDED, at, id, summary).by(names.actor(conn, by.as_deref())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().naive_utc()
    }

    #[test]
    fn bounds_follow_the_order() {
        let p = Position { at: at("2026-11-25T09:00:00Z"), kind: NOTE.into(), id: "m".into() };
        assert_eq!(Bound::for_source(None, NOTE), Bound::Open);
        assert_eq!(Bound::for_source(Some(&p), NOTE), Bound::Tie(p.at, "m".into()));
        // "consent_recorded" < "note": at the same instant it sorts after the note.
        assert_eq!(Bound::for_source(Some(&p), CONSENT_RECORDED), Bound::AtOrBefore(p.at));
        assert_eq!(Bound::for_source(Some(&p), TEAM_MEMBER_ADDED), Bound::Before(p.at));
    }

    #[test]
    fn positions_round_trip_and_items_sort_newest_first() {
        let p = Position { at: at("2026-11-25T09:00:00.123456Z"), kind: EMERGENCY_ACCESS.into(), id: "x|y".into() };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("2026-11-25T09:00:00Z|note"), None);
        let item = |kind, t, id: &str| Item::new(kind, at(t), id.into(), (String::new(), String::new()));
        let mut items = [
            item(NOTE, "2026-11-25T09:00:00Z", "a"),
            item(CONSENT_RECORDED, "2026-11-25T09:00:00Z", "z"),
            item(NOTE, "2026-11-25T10:00:00Z", "b"),
            item(NOTE, "2026-11-25T09:00:00Z", "c"),
        ];
        items.sort_by(Item::newest_first);
        let order: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(order, ["b", "c", "a", "z"]);
    }
}
