//! Merging a duplicate registration into the patient that stays (`POST /patients/{id}/merge`).
//!
//! Its own file because it spans two capabilities: a duplicate with a running discharge case is
//! not merged.

use diesel::prelude::*;
use serde::Serialize;

use super::Patient;
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::schema::patients;
use crate::db::{now, DbConn};
use crate::discharge::cases;
use crate::error::{AppError, AppResult};

#[derive(Debug, Serialize)]
pub struct Merged {
    pub id: String,
    pub superseded_by: String,
}

/// Merges the registration `duplicate` into `surviving`, for the care manager of both (the
/// handler asks `access::merge_patients`). Nothing moves: the duplicate keeps its notes, cases
/// and audit trail (append-only), points at the patient that stays and takes no more writes
/// (`access::patient`). Both patients' audit trails record the merge.
pub fn merge(conn: &mut DbConn, me: &CurrentUser, duplicate: Patient, surviving: Patient) -> AppResult<Merged> {
    if surviving.superseded_by.is_some() {
        return Err(AppError::field(
            "into",
            "already_merged",
            "統合先(into)の患者はすでに別の患者に統合されています。残る方の患者を指定してください。",
            "The patient named by into was itself merged into another: name the patient that stays.",
        ));
    }
    if duplicate.birth_date != surviving.birth_date {
        return Err(AppError::field(
            "into",
            "different_birth_date",
            "生年月日が異なる患者は統合できません。同じ方の重複登録か確かめてください。",
            "Patients with different birth dates cannot be merged: check that both registrations are the same person.",
        ));
    }
    // A running case's deadlines and tasks would be stranded on a registration that takes no
    // more writes: it is closed or cancelled first, and opened again on the patient that stays
    // if it is still needed.
    if let Some(running) = cases::running_for_patient(conn, &duplicate.id)? {
        return Err(AppError::conflict(
            format!(
                "統合する患者に進行中の入退院調整があります(状態: {})。終了または取消してから統合してください。",
                running.status
            ),
            format!(
                "The duplicate has a running discharge case ({}): close or cancel it before merging.",
                running.status
            ),
        ));
    }
    if !supersede(conn, &duplicate, &surviving.id)? {
        return Err(AppError::conflict(
            "この患者はすでに統合されているか、他の人が変更しました。",
            "This patient was merged already or changed by someone else.",
        ));
    }
    for (patient_id, detail) in [
        (&duplicate.id, format!("merged into {}", surviving.id)),
        (&surviving.id, format!("merged from {}", duplicate.id)),
    ] {
        let event = Event::new(Action::Update, Resource::Patient, Some(patient_id), Some(patient_id)).detail(detail);
        audit::record(conn, me, event)?;
    }
    Ok(Merged { id: duplicate.id, superseded_by: surviving.id })
}

/// Marks `duplicate` as merged into `surviving`; false when someone changed it first (it was
/// merged already, or edited since the version the caller read).
pub fn supersede(conn: &mut DbConn, duplicate: &Patient, surviving: &str) -> AppResult<bool> {
    let n = diesel::update(
        patients::table
            .filter(patients::id.eq(&duplicate.id))
            .filter(patients::version.eq(duplicate.version))
            .filter(patients::superseded_by.is_null()),
    )
    .set((
        patients::superseded_by.eq(Some(surviving)),
        patients::version.eq(duplicate.version + 1),
        patients::updated_at.eq(now()),
    ))
    .execute(conn)?;
    if n == 1 {
        crate::changes::record(conn, crate::changes::Change::Patient { patient_id: &duplicate.id })?;
    }
    Ok(n == 1)
}
