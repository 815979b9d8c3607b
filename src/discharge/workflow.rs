//! The life of a discharge case (DESIGN.md §4): opened for an admitted patient, its details
//! changed while it runs, discharged when the patient leaves, then closed — or cancelled while
//! the patient is still in hospital. Each step spans tables (the case, its tasks, the patient's
//! status, the care team, the notices, the audit log), so each is one call of [`transition`],
//! made in the request's one transaction after the handler has asked `access` whether the
//! caller may take it. Which status may follow which is [`CaseStatus::MOVES`].

use chrono::{NaiveDate, NaiveDateTime};

use super::cases::{self, Case, CaseChanges, Contact};
use super::tasks::{Task, TaskChanges};
use super::{notices, tasks, CaseStatus, TaskStatus};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::db::{new_id, now, DbConn};
use crate::error::{AppError, AppResult};
use crate::mail::Mailer;
use crate::patients::{self, team, today_jst, NewPatient, Patient};
use crate::vocab::{PatientStatus, Profession, TeamRole};

/// The patient a new case is for.
pub enum CasePatient {
    /// A registered patient as `access::patient_for_new_case` found them, with the caller's
    /// active membership of their team, if any.
    Registered(Box<Patient>, Option<team::Member>),
    /// A patient registered with the case (its ward already checked).
    New(NewPatient),
}

/// A case to open, checked.
pub struct NewCase {
    pub patient: CasePatient,
    /// The admission instant, when known; `admitted_on` is its day in Japan.
    pub admitted_at: Option<NaiveDateTime>,
    pub admitted_on: NaiveDate,
    pub planned_discharge_on: Option<NaiveDate>,
    pub department: Option<String>,
    pub hospital_ward: Option<String>,
    pub reason: Option<String>,
    pub contact: Option<Contact>,
}

/// The details `PATCH` changes: `None` keeps a field, `Some(None)` clears it.
#[derive(Default)]
pub struct CaseDetails {
    pub planned_discharge_on: Option<Option<NaiveDate>>,
    pub department: Option<Option<String>>,
    pub hospital_ward: Option<Option<String>>,
    pub reason: Option<Option<String>>,
    pub contact: Option<Option<Contact>>,
}

/// One step of a case's life. Each step after `Open` names the case as the caller's access
/// check loaded it and the version the client holds (`If-Match`; `None` when it was not sent
/// and the route allows that).
pub enum Step<'a> {
    Open { case: Box<NewCase>, mailer: &'a Mailer },
    Update { case: Case, expected: i32, details: CaseDetails },
    Discharge { case: Case, expected: Option<i32>, on: NaiveDate, mailer: &'a Mailer },
    Close { case: Case, expected: Option<i32> },
    Cancel { case: Case, expected: Option<i32>, reason: String },
}

/// Takes one step and gives the case as it now is. A step the case's status does not allow is
/// 409 ([`CaseStatus::check_move`]); a stale version is 412; bad dates are 422 naming the field.
pub fn transition(conn: &mut DbConn, me: &CurrentUser, step: Step<'_>) -> AppResult<Case> {
    match step {
        Step::Open { case, mailer } => open(conn, me, *case, mailer),
        Step::Update { case, expected, details } => update(conn, me, case, expected, details),
        Step::Discharge { case, expected, on, mailer } => discharge(conn, me, case, expected, on, mailer),
        Step::Close { case, expected } => close(conn, me, case, expected),
        Step::Cancel { case, expected, reason } => cancel(conn, me, case, expected, reason),
    }
}

/// Tasks, conferences and comments are worked on while the case is open or discharged.
pub fn require_active(case: &Case) -> AppResult<()> {
    let status = case.status;
    if status.is_active() {
        Ok(())
    } else {
        Err(AppError::conflict(
            format!("この入退院調整は {status} のため変更できません。"),
            format!("This discharge case is {status} and can no longer be changed."),
        ))
    }
}

/// `If-Match`, when sent, must name the current version.
pub fn check_version(expected: Option<i32>, current: i32) -> AppResult<()> {
    match expected {
        Some(v) if v != current => Err(AppError::precondition_failed()),
        _ => Ok(()),
    }
}

fn open(conn: &mut DbConn, me: &CurrentUser, new: NewCase, mailer: &Mailer) -> AppResult<Case> {
    let at = now();
    let (patient, member) = match new.patient {
        CasePatient::Registered(patient, member) => (*patient, member),
        CasePatient::New(registration) => {
            // Registered from a hospital, the target saturation is still a clinician's decision:
            // the handler asked `access::decide_spo2_target`.
            let target = registration.spo2_target_88_92;
            let patient = patients::insert(conn, registration, &me.id)?;
            let mut event = Event::new(Action::Create, Resource::Patient, Some(&patient.id), Some(&patient.id));
            if target {
                event = event.detail(patients::spo2_target_detail(true));
            }
            audit::record(conn, me, event)?;
            (patient, None)
        }
    };
    if let Some(running) = cases::running_for_patient(conn, &patient.id)? {
        return Err(AppError::conflict(
            format!(
                "この患者には進行中の入退院調整があります(状態: {})。終了または取消してから開始してください。",
                running.status
            ),
            format!(
                "This patient already has a running discharge case ({}). Close or cancel it first.",
                running.status
            ),
        ));
    }
    let current = patient.status;
    if current != PatientStatus::Hospitalized && !current.can_become(PatientStatus::Hospitalized) {
        return Err(AppError::conflict(
            format!("患者の状態が {current} のため入退院調整を開始できません。"),
            format!("A discharge case cannot be opened for a patient who is {current}."),
        ));
    }
    move_patient(conn, &patient.id, PatientStatus::Hospitalized)?;
    // The opener is on the team for the life of the case (DESIGN.md §5).
    let opener_member_id = match member {
        Some(m) => m.id,
        None => {
            let m = team::add(
                conn,
                &patient.id,
                &me.id,
                me.employer()?,
                TeamRole::HospitalStaff,
                false,
                today_jst(),
                &me.id,
            )?;
            audit::record(
                conn,
                me,
                Event::new(Action::Create, Resource::CareTeamMember, Some(&m.id), Some(&patient.id)),
            )?;
            m.id
        }
    };
    let (contact_name, contact_phone) = match new.contact {
        Some(c) => (Some(c.name), c.phone),
        None => (None, None),
    };
    let case = Case {
        id: new_id(),
        patient_id: patient.id.clone(),
        hospital_id: me.employer()?.to_string(),
        opened_by: me.id.clone(),
        opener_member_id,
        admitted_at: new.admitted_at,
        admitted_on: new.admitted_on,
        planned_discharge_on: new.planned_discharge_on,
        discharged_on: None,
        status: CaseStatus::Open,
        department: new.department,
        hospital_ward: new.hospital_ward,
        reason: new.reason,
        contact_name,
        contact_phone,
        cancel_reason: None,
        closed_at: None,
        cancelled_at: None,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    cases::insert(conn, &case)?;
    let generated = tasks::generate(conn, &case, &me.id)?;
    notices::case_opened(conn, mailer, &case, &me.id)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Create, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
            .detail(format!("tasks:{}", generated.len())),
    )?;
    Ok(case)
}

/// The hospital changes the planned discharge date (open tasks' deadlines move with it) and the
/// case's details, while the case runs; the planned date only while the patient is in hospital.
fn update(conn: &mut DbConn, me: &CurrentUser, case: Case, expected: i32, details: CaseDetails) -> AppResult<Case> {
    check_version(Some(expected), case.version)?;
    require_active(&case)?;
    let planned_changes = details.planned_discharge_on.is_some_and(|p| p != case.planned_discharge_on);
    if let Some(planned) = details.planned_discharge_on {
        if planned_changes && case.status != CaseStatus::Open {
            return Err(AppError::conflict(
                "退院後は退院予定日を変更できません。",
                "The planned discharge date cannot change once the patient is discharged.",
            ));
        }
        if planned.is_some_and(|p| p < case.admitted_on) {
            return Err(AppError::field(
                "planned_discharge_on",
                "before_admission",
                "退院予定日が入院日より前です。",
                "planned_discharge_on is before the admission.",
            ));
        }
    }
    let (contact_name, contact_phone) = match details.contact {
        None => (None, None),
        Some(None) => (Some(None), Some(None)),
        Some(Some(c)) => (Some(Some(c.name)), Some(c.phone)),
    };
    let changes = CaseChanges {
        planned_discharge_on: details.planned_discharge_on,
        department: details.department,
        hospital_ward: details.hospital_ward,
        reason: details.reason,
        contact_name,
        contact_phone,
        ..Default::default()
    };
    let case = apply(conn, &case, expected, changes)?;
    if planned_changes {
        tasks::recompute_deadlines(conn, &case)?;
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id)),
    )?;
    Ok(case)
}

/// The patient left hospital: they are home again, the post-discharge deadlines start, and the
/// team is told.
fn discharge(
    conn: &mut DbConn,
    me: &CurrentUser,
    case: Case,
    expected: Option<i32>,
    on: NaiveDate,
    mailer: &Mailer,
) -> AppResult<Case> {
    check_version(expected, case.version)?;
    case.status.check_move(CaseStatus::Discharged)?;
    if on < case.admitted_on {
        return Err(AppError::field(
            "discharged_on",
            "before_admission",
            "退院日が入院日より前です。",
            "discharged_on is before the admission.",
        ));
    }
    let changes =
        CaseChanges { status: Some(CaseStatus::Discharged), discharged_on: Some(Some(on)), ..Default::default() };
    let case = apply(conn, &case, case.version, changes)?;
    tasks::recompute_deadlines(conn, &case)?;
    move_patient(conn, &case.patient_id, PatientStatus::Home)?;
    notices::patient_discharged(conn, mailer, &case, &me.id)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeCase, Some(&case.id), Some(&case.patient_id))
            .detail("discharged"),
    )?;
    Ok(case)
}

/// Coordination is over: every task is completed or cancelled first; the opener's
/// hospital-staff membership ends.
fn close(conn: &mut DbConn, me: &CurrentUser, case: Case, expected: Option<i32>) -> AppResult<Case> {
    check_version(expected, case.version)?;
    case.status.check_move(CaseStatus::Closed)?;
    let open = tasks::open_count(conn, &case.id)?;
    if open > 0 {
        return Err(AppError::conflict(
            format!("未完了のタスクが {open} 件あります。完了または取消してから終了してください。"),
            format!("{open} task(s) are still open. Complete or cancel them before closing the case."),
        ));
    }
    let changes = CaseChanges { status: Some(CaseStatus::Closed), closed_at: Some(Some(now())), ..Default::default() };
    let closed = apply(conn, &case, case.version, changes)?;
    end_opener_membership(conn, me, &closed)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeCase, Some(&closed.id), Some(&closed.patient_id))
            .detail("closed"),
    )?;
    Ok(closed)
}

/// The case is void (e.g. the patient was transferred to another hospital): its open tasks are
/// cancelled, the patient is home again, the opener's membership ends.
fn cancel(conn: &mut DbConn, me: &CurrentUser, case: Case, expected: Option<i32>, reason: String) -> AppResult<Case> {
    check_version(expected, case.version)?;
    case.status.check_move(CaseStatus::Cancelled)?;
    tasks::cancel_open(conn, &case.id, "入退院調整の取消 (discharge case cancelled)")?;
    let changes = CaseChanges {
        status: Some(CaseStatus::Cancelled),
        cancel_reason: Some(Some(reason)),
        cancelled_at: Some(Some(now())),
        ..Default::default()
    };
    let cancelled = apply(conn, &case, case.version, changes)?;
    move_patient(conn, &cancelled.patient_id, PatientStatus::Home)?;
    end_opener_membership(conn, me, &cancelled)?;
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeCase, Some(&cancelled.id), Some(&cancelled.patient_id))
            .detail("cancelled"),
    )?;
    Ok(cancelled)
}

/// Writes the changes at the expected version and reads the case back; 412 when someone
/// changed it first.
fn apply(conn: &mut DbConn, case: &Case, expected: i32, changes: CaseChanges) -> AppResult<Case> {
    if !cases::update(conn, &case.id, expected, changes)? {
        return Err(AppError::precondition_failed());
    }
    cases::find(conn, &case.id)?.ok_or_else(AppError::not_found)
}

/// Sets the patient's status on admission or discharge, when the move makes sense.
fn move_patient(conn: &mut DbConn, patient_id: &str, to: PatientStatus) -> AppResult<()> {
    let patient = patients::find(conn, patient_id)?.ok_or_else(|| AppError::internal("case without patient"))?;
    let current = patient.status;
    if current != to && current.can_become(to) {
        patients::set_status(conn, patient_id, to)?;
    }
    Ok(())
}

/// Ends the care-team membership a case gave its opener (role hospital_staff), if still open.
fn end_opener_membership(conn: &mut DbConn, me: &CurrentUser, case: &Case) -> AppResult<()> {
    let Some(member) = team::find(conn, &case.patient_id, &case.opener_member_id)? else { return Ok(()) };
    if member.ended_at.is_none() && member.role == TeamRole::HospitalStaff {
        team::end(conn, &member.id, today_jst(), &me.id)?;
        audit::record(
            conn,
            me,
            Event::new(Action::Update, Resource::CareTeamMember, Some(&member.id), Some(&case.patient_id))
                .detail("discharge case ended"),
        )?;
    }
    Ok(())
}

/// What a change of a task asks for (`PATCH /tasks/{id}`, the console's task form): `None`
/// keeps a field, `Some(None)` clears it.
#[derive(Default)]
pub struct TaskMove {
    pub status: Option<TaskStatus>,
    pub status_reason: Option<Option<String>>,
    pub assignee_id: Option<Option<String>>,
    pub profession: Option<Option<Profession>>,
    pub team_role: Option<Option<TeamRole>>,
    pub due_at: Option<Option<NaiveDateTime>>,
}

/// Works on a task of an active case at the version the caller holds: a status move FHIR allows,
/// an assignment (checked by `access::task_assignee` first), an ad-hoc task's deadline. The new
/// assignee is told; the change is audited.
pub fn work_on_task(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    task: Task,
    expected: i32,
    change: TaskMove,
) -> AppResult<Task> {
    check_version(Some(expected), task.version)?;
    let current = task.status;
    if let Some(next) = change.status {
        if next != current && !current.can_become(next) {
            let allowed: Vec<&str> = current.next().iter().map(|s| s.as_str()).collect();
            let allowed = if allowed.is_empty() { "(なし / none)".to_string() } else { allowed.join(", ") };
            return Err(AppError::conflict(
                format!("タスクの状態を {current} から {next} に変更することはできません。{current} から変更できる状態: {allowed}"),
                format!("A task cannot move from {current} to {next}. From {current} it may move to: {allowed}"),
            ));
        }
    }
    let assignee_after = change.assignee_id.clone().unwrap_or_else(|| task.assignee_id.clone());
    // A new profession from an older client names the role that does the task, unless the role
    // is given too.
    let team_role = match (change.team_role, change.profession) {
        (Some(role), _) => Some(role),
        (None, Some(Some(p))) => Some(Some(tasks::role_for_profession(p))),
        _ => None,
    };
    let team_role_after = team_role.unwrap_or(task.team_role);
    if assignee_after.is_none() && team_role_after.is_none() {
        return Err(AppError::field(
            "assignee_id",
            "assignment_required",
            "タスクには担当する役割か担当者のどちらかが必要です。",
            "A task stays assigned to a role on the care team or to a team member.",
        ));
    }
    if change.due_at.is_some() && task.template_key.is_some() {
        return Err(AppError::field(
            "due_at",
            "rule_based",
            "テンプレートから作られたタスクの期限は入院日・退院(予定)日から決まります。日付を変更してください。",
            "A task from a template is due by its rule; change the case's dates instead.",
        ));
    }
    let completing = change.status == Some(TaskStatus::Completed) && current != TaskStatus::Completed;
    let changes = TaskChanges {
        status: change.status,
        status_reason: change.status_reason,
        assignee_id: change.assignee_id.clone(),
        profession: change.profession,
        team_role,
        due_at: change.due_at,
        completed_at: completing.then(|| Some(now())),
        completed_by: completing.then(|| Some(me.id.clone())),
        ..Default::default()
    };
    if !tasks::update(conn, &task.id, expected, changes)? {
        return Err(AppError::precondition_failed());
    }
    let updated = tasks::find(conn, &task.id)?.ok_or_else(AppError::not_found)?;
    if let Some(Some(assignee)) = &change.assignee_id {
        if task.assignee_id.as_ref() != Some(assignee) {
            notices::task_assigned(conn, mailer, &updated, assignee, &me.id)?;
        }
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::DischargeTask, Some(&task.id), Some(&task.patient_id)),
    )?;
    Ok(updated)
}
