//! The emergency card (急変時情報 / ACP, 人生会議): what an ambulance crew or an emergency physician
//! needs in one request — the patient's wishes (place of care, resuscitation wishes, and the
//! physician's DNAR decision with its date), the key person and whom to call, the home
//! physician's 24-hour number, the main diagnoses, and the current medications and allergies
//! from the lists. The card's own part is versioned; the lists are read as they stand.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::DnarDecision;
use crate::api::{self, Check};
use crate::db::schema::{emergency_card_versions as cv, emergency_cards as c, users};
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::vocab::{CareLevel, PatientStatus, Sex};

/// The physician's decision about resuscitation, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnar {
    pub decision: DnarDecision,
    pub decided_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPerson {
    pub name: String,
    pub relationship: Option<String>,
    pub phone: Option<String>,
}

/// Someone to call when the patient deteriorates, in the order to call them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub relationship: Option<String>,
    pub phone: String,
    pub note: Option<String>,
}

/// The card as sent. `dnar` left out keeps the recorded decision; `null` withdraws it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardBody {
    pub place_of_care: Option<String>,
    pub resuscitation_wishes: Option<String>,
    #[serde(default, deserialize_with = "api::double_option", skip_serializing_if = "Option::is_none")]
    pub dnar: Option<Option<Dnar>>,
    pub key_person: Option<KeyPerson>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    pub physician_24h_phone: Option<String>,
    #[serde(default)]
    pub diagnoses: Vec<String>,
    pub note: Option<String>,
}

const MAX_CONTACTS: usize = 10;
const MAX_DIAGNOSES: usize = 20;

impl CardBody {
    pub fn check(&self, check: &mut Check) {
        check.optional_text("place_of_care", self.place_of_care.as_deref(), 200);
        check.optional_text("resuscitation_wishes", self.resuscitation_wishes.as_deref(), 1000);
        if let Some(Some(d)) = &self.dnar {
            super::check_not_future(check, "dnar.decided_on", Some(d.decided_on));
        }
        if let Some(k) = &self.key_person {
            check.required_line("key_person.name", &k.name, 100);
            check.line("key_person.relationship", k.relationship.as_deref(), 50);
            check.phone("key_person.phone", k.phone.as_deref());
        }
        if self.contacts.len() > MAX_CONTACTS {
            check.push(
                "contacts",
                "too_many",
                format!("contacts(連絡先)は{MAX_CONTACTS}件までです。"),
                format!("contacts holds at most {MAX_CONTACTS} people."),
            );
        }
        for (i, c) in self.contacts.iter().enumerate() {
            check.required_line(&format!("contacts[{i}].name"), &c.name, 100);
            check.line(&format!("contacts[{i}].relationship"), c.relationship.as_deref(), 50);
            check.phone(&format!("contacts[{i}].phone"), Some(&c.phone));
            check.line(&format!("contacts[{i}].note"), c.note.as_deref(), 200);
        }
        check.phone("physician_24h_phone", self.physician_24h_phone.as_deref());
        if self.diagnoses.len() > MAX_DIAGNOSES {
            check.push(
                "diagnoses",
                "too_many",
                format!("diagnoses(主な診断名)は{MAX_DIAGNOSES}件までです。"),
                format!("diagnoses holds at most {MAX_DIAGNOSES} entries."),
            );
        }
        for (i, d) in self.diagnoses.iter().enumerate() {
            check.required_line(&format!("diagnoses[{i}]"), d, 100);
        }
        check.optional_text("note", self.note.as_deref(), 1000);
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = c)]
struct Head {
    patient_id: String,
    version: i32,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = cv)]
struct Version {
    id: String,
    patient_id: String,
    version: i32,
    place_of_care: Option<String>,
    resuscitation_wishes: Option<String>,
    dnar_decision: Option<DnarDecision>,
    dnar_decided_on: Option<NaiveDate>,
    dnar_recorded_by: Option<String>,
    key_person_name: Option<String>,
    key_person_relationship: Option<String>,
    key_person_phone: Option<String>,
    contacts: String,
    physician_24h_phone: Option<String>,
    diagnoses: String,
    note: Option<String>,
    recorded_by: String,
    recorded_at: NaiveDateTime,
}

/// A recorded DNAR decision: what, decided when, recorded by which physician.
#[derive(Debug, Clone, Serialize)]
pub struct DnarView {
    pub decision: DnarDecision,
    pub decided_on: NaiveDate,
    pub recorded_by: String,
    pub recorded_by_name: String,
}

/// One version of the card's own part.
#[derive(Debug, Clone, Serialize)]
pub struct CardView {
    pub version: i32,
    pub place_of_care: Option<String>,
    pub resuscitation_wishes: Option<String>,
    pub dnar: Option<DnarView>,
    pub key_person: Option<KeyPerson>,
    pub contacts: Vec<Contact>,
    pub physician_24h_phone: Option<String>,
    pub diagnoses: Vec<String>,
    pub note: Option<String>,
    pub recorded_by: String,
    pub recorded_by_name: String,
    #[serde(serialize_with = "api::utc")]
    pub recorded_at: NaiveDateTime,
}

fn name_of(conn: &mut DbConn, user_id: &str) -> AppResult<String> {
    Ok(users::table.find(user_id).select(users::name).first(conn)?)
}

fn view_of(conn: &mut DbConn, v: Version) -> AppResult<CardView> {
    let dnar = match (v.dnar_decision, v.dnar_decided_on, v.dnar_recorded_by) {
        (Some(decision), Some(decided_on), Some(by)) => {
            Some(DnarView { decision, decided_on, recorded_by_name: name_of(conn, &by)?, recorded_by: by })
        }
        _ => None,
    };
    let key_person = v.key_person_name.map(|name| KeyPerson {
        name,
        relationship: v.key_person_relationship,
        phone: v.key_person_phone,
    });
    let contacts = serde_json::from_str(&v.contacts).map_err(|e| AppError::internal(format!("card contacts: {e}")))?;
    let diagnoses =
        serde_json::from_str(&v.diagnoses).map_err(|e| AppError::internal(format!("card diagnoses: {e}")))?;
    Ok(CardView {
        version: v.version,
        place_of_care: v.place_of_care,
        resuscitation_wishes: v.resuscitation_wishes,
        dnar,
        key_person,
        contacts,
        physician_24h_phone: v.physician_24h_phone,
        diagnoses,
        note: v.note,
        recorded_by_name: name_of(conn, &v.recorded_by)?,
        recorded_by: v.recorded_by,
        recorded_at: v.recorded_at,
    })
}

fn current_row(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<Version>> {
    let Some(head) = c::table.find(patient_id).select(Head::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    Ok(Some(
        cv::table
            .filter(cv::patient_id.eq(patient_id))
            .filter(cv::version.eq(head.version))
            .select(Version::as_select())
            .first(conn)?,
    ))
}

/// The current version of the patient's card, if one was recorded.
pub fn current(conn: &mut DbConn, patient_id: &str) -> AppResult<Option<CardView>> {
    match current_row(conn, patient_id)? {
        Some(v) => Ok(Some(view_of(conn, v)?)),
        None => Ok(None),
    }
}

/// The current version number (0 when no card was recorded).
pub fn version(conn: &mut DbConn, patient_id: &str) -> AppResult<i32> {
    Ok(c::table.find(patient_id).select(c::version).first(conn).optional()?.unwrap_or(0))
}

/// Every version of the card, oldest first.
pub fn history(conn: &mut DbConn, patient_id: &str) -> AppResult<Vec<CardView>> {
    let rows: Vec<Version> = cv::table
        .filter(cv::patient_id.eq(patient_id))
        .order(cv::version.asc())
        .select(Version::as_select())
        .load(conn)?;
    rows.into_iter().map(|v| view_of(conn, v)).collect()
}

/// What a write of the card does to the DNAR decision.
#[derive(Debug, Clone, PartialEq)]
pub enum DnarChange {
    Kept,
    Recorded(Dnar),
    Withdrawn,
}

/// How `body` changes the recorded DNAR decision: sending the decision already recorded keeps it.
pub fn dnar_change(conn: &mut DbConn, patient_id: &str, body: &CardBody) -> AppResult<DnarChange> {
    let recorded = current_row(conn, patient_id)?.and_then(|v| match (v.dnar_decision, v.dnar_decided_on) {
        (Some(decision), Some(decided_on)) => Some(Dnar { decision, decided_on }),
        _ => None,
    });
    Ok(match (&body.dnar, recorded) {
        (None, _) => DnarChange::Kept,
        (Some(None), None) => DnarChange::Kept,
        (Some(None), Some(_)) => DnarChange::Withdrawn,
        (Some(Some(d)), Some(r)) if *d == r => DnarChange::Kept,
        (Some(Some(d)), _) => DnarChange::Recorded(d.clone()),
    })
}

/// Records a new version of the card from version `expected` (0: the first card). The head
/// moves in one statement, so of two concurrent writes of one version only one wins (412).
pub fn record(
    conn: &mut DbConn,
    patient_id: &str,
    expected: i32,
    body: CardBody,
    dnar: DnarChange,
    by: &str,
) -> AppResult<CardView> {
    let previous = current_row(conn, patient_id)?;
    let t = now();
    let number = if expected == 0 {
        let inserted = crate::per_backend!(conn, |x| diesel::insert_into(c::table)
            .values(&Head { patient_id: patient_id.to_string(), version: 1, created_at: t })
            .on_conflict_do_nothing()
            .execute(x))?;
        if inserted != 1 {
            return Err(AppError::precondition_failed());
        }
        1
    } else {
        let moved = diesel::update(c::table.filter(c::patient_id.eq(patient_id)).filter(c::version.eq(expected)))
            .set(c::version.eq(expected + 1))
            .execute(conn)?;
        super::moved_to(moved, expected)?
    };
    let (dnar_decision, dnar_decided_on, dnar_recorded_by) = match dnar {
        DnarChange::Recorded(d) => (Some(d.decision), Some(d.decided_on), Some(by.to_string())),
        DnarChange::Withdrawn => (None, None, None),
        DnarChange::Kept => match previous {
            Some(p) => (p.dnar_decision, p.dnar_decided_on, p.dnar_recorded_by),
            None => (None, None, None),
        },
    };
    let v = Version {
        id: new_id(),
        patient_id: patient_id.to_string(),
        version: number,
        place_of_care: body.place_of_care,
        resuscitation_wishes: body.resuscitation_wishes,
        dnar_decision,
        dnar_decided_on,
        dnar_recorded_by,
        key_person_name: body.key_person.as_ref().map(|k| k.name.clone()),
        key_person_relationship: body.key_person.as_ref().and_then(|k| k.relationship.clone()),
        key_person_phone: body.key_person.as_ref().and_then(|k| k.phone.clone()),
        contacts: to_json(&body.contacts)?,
        physician_24h_phone: body.physician_24h_phone,
        diagnoses: to_json(&body.diagnoses)?,
        note: body.note,
        recorded_by: by.to_string(),
        recorded_at: t,
    };
    diesel::insert_into(cv::table).values(&v).execute(conn)?;
    crate::changes::record(conn, crate::changes::Change::EmergencyCard { patient_id })?;
    view_of(conn, v)
}

/// A list stored as JSON text in its column.
fn to_json<T: Serialize>(list: &T) -> AppResult<String> {
    serde_json::to_string(list).map_err(|e| AppError::internal(format!("card list: {e}")))
}

/// Who the card is about, as the crew needs to identify them.
#[derive(Debug, Clone, Serialize)]
pub struct PatientPart {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub family_name_kana: String,
    pub given_name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub care_level: CareLevel,
    pub status: PatientStatus,
}

/// Everything on the card, in one answer: the card's own part (absent until first recorded),
/// the drugs taken now with the last pharmacist's check, and the allergies that stand.
#[derive(Debug, Clone, Serialize)]
pub struct Sheet {
    pub patient: PatientPart,
    /// The card's version (0 before the first one was recorded): its `ETag`.
    pub version: i32,
    pub card: Option<CardView>,
    pub medications: Vec<super::medications::View>,
    pub medications_checked: Option<super::medications::ReconciliationView>,
    pub allergies: Vec<super::allergies::View>,
    #[serde(serialize_with = "api::utc")]
    pub generated_at: NaiveDateTime,
}

/// The whole card of a patient (the caller may read the patient).
pub fn sheet(conn: &mut DbConn, p: &crate::patients::Patient) -> AppResult<Sheet> {
    let card = current(conn, &p.id)?;
    Ok(Sheet {
        patient: PatientPart {
            id: p.id.clone(),
            family_name: p.family_name.clone(),
            given_name: p.given_name.clone(),
            family_name_kana: p.family_name_kana.clone(),
            given_name_kana: p.given_name_kana.clone(),
            birth_date: p.birth_date,
            sex: p.sex,
            address: p.address.clone(),
            phone: p.phone.clone(),
            care_level: p.care_level,
            status: p.status,
        },
        version: card.as_ref().map_or(0, |c| c.version),
        card,
        medications: super::medications::current_list(conn, &p.id)?,
        medications_checked: super::medications::last_reconciliation(conn, &p.id)?,
        allergies: super::allergies::current_list(conn, &p.id)?,
        generated_at: now(),
    })
}
