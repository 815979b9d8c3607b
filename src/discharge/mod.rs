//! Discharge coordination (入退院調整): a case opened by hospital staff for an admitted patient,
//! the tasks generated from templates whose deadlines follow Japanese practice (shared/DOMAIN.md,
//! DESIGN.md §4), the discharge conference, and the notices the team is given.

pub mod cases;
pub mod conferences;
pub mod deadlines;
pub mod digest;
pub mod handlers;
pub mod notices;
pub mod routing;
pub mod tasks;
pub mod templates;
pub mod workflow;

use crate::error::{AppError, AppResult};

crate::text_enum! {
    /// Where a case is: `open` while the patient is in hospital, `discharged` once they have left
    /// (post-discharge tasks still running), `closed` when coordination is over, or `cancelled`
    /// (e.g. the patient was transferred or the admission turned out not to need coordination).
    CaseStatus {
        Open => "open" ("調整中", "Open"),
        Discharged => "discharged" ("退院済み", "Discharged"),
        Closed => "closed" ("終了", "Closed"),
        Cancelled => "cancelled" ("中止", "Cancelled"),
    }
}

impl CaseStatus {
    /// The moves a case makes, as data: an open case is discharged (the patient left) or
    /// cancelled; a discharged case is closed once its tasks are done. closed and cancelled are
    /// final. A case is born open (`POST /discharge-cases`), which is no move.
    pub const MOVES: [(CaseStatus, CaseStatus); 3] = [
        (CaseStatus::Open, CaseStatus::Discharged),
        (CaseStatus::Open, CaseStatus::Cancelled),
        (CaseStatus::Discharged, CaseStatus::Closed),
    ];

    /// Tasks, conferences and comments are worked on while the case is open or discharged.
    pub fn is_active(self) -> bool {
        matches!(self, CaseStatus::Open | CaseStatus::Discharged)
    }

    pub fn can_become(self, next: CaseStatus) -> bool {
        Self::MOVES.contains(&(self, next))
    }

    /// Where a case in this status may go next.
    pub fn next(self) -> Vec<CaseStatus> {
        Self::MOVES.iter().filter(|(from, _)| *from == self).map(|(_, to)| *to).collect()
    }

    /// The move to `next`, or the 409 that names both statuses and where this one may go.
    pub fn check_move(self, next: CaseStatus) -> AppResult<()> {
        if self.can_become(next) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.next().iter().map(|s| s.as_str()).collect();
        let allowed = if allowed.is_empty() { "(なし / none)".to_string() } else { allowed.join(", ") };
        Err(AppError::conflict(
            format!("入退院調整の状態を {self} から {next} に変更することはできません。{self} から変更できる状態: {allowed}"),
            format!("A discharge case cannot move from {self} to {next}. From {self} it may move to: {allowed}"),
        ))
    }

    /// The stored text of the running statuses, for queries.
    pub fn active_codes() -> Vec<&'static str> {
        Self::ALL.iter().filter(|s| s.is_active()).map(|s| s.as_str()).collect()
    }
}

crate::text_enum! {
    /// FHIR R4 Task.status, all twelve codes, with `_` for `-`, in the order FHIR lists them
    /// (docs/domain.md, "Vocabularies").
    TaskStatus {
        Draft => "draft" ("下書き", "Draft"),
        Requested => "requested" ("依頼中", "Requested"),
        Received => "received" ("受付済み", "Received"),
        Accepted => "accepted" ("引受済み", "Accepted"),
        Rejected => "rejected" ("辞退", "Rejected"),
        Ready => "ready" ("準備完了", "Ready"),
        Cancelled => "cancelled" ("取消", "Cancelled"),
        InProgress => "in_progress" ("対応中", "In progress"),
        OnHold => "on_hold" ("保留", "On hold"),
        Failed => "failed" ("未達成", "Failed"),
        Completed => "completed" ("完了", "Completed"),
        EnteredInError => "entered_in_error" ("誤登録", "Entered in error"),
    }
}

impl TaskStatus {
    /// The moves a person may make, as data: FHIR Task's state machine as the discharge workflow
    /// uses it (docs/domain.md, "Task statuses"). A drafted task is requested; a request is
    /// received, accepted, rejected or started; an accepted task is made ready, started, put on
    /// hold or completed; work in progress is put on hold, completed or failed. Every task not
    /// yet final may be cancelled (no longer needed) or marked entered in error (it should never
    /// have existed). rejected, cancelled, failed, completed and entered_in_error are final: no
    /// move leaves them.
    pub const MOVES: &'static [(TaskStatus, TaskStatus)] = {
        use TaskStatus::*;
        &[
            (Draft, Requested),
            (Draft, Cancelled),
            (Draft, EnteredInError),
            (Requested, Received),
            (Requested, Accepted),
            (Requested, Rejected),
            (Requested, Cancelled),
            (Requested, InProgress),
            (Requested, EnteredInError),
            (Received, Accepted),
            (Received, Rejected),
            (Received, Cancelled),
            (Received, InProgress),
            (Received, EnteredInError),
            (Accepted, Ready),
            (Accepted, Cancelled),
            (Accepted, InProgress),
            (Accepted, OnHold),
            (Accepted, Completed),
            (Accepted, EnteredInError),
            (Ready, Cancelled),
            (Ready, InProgress),
            (Ready, OnHold),
            (Ready, EnteredInError),
            (InProgress, Cancelled),
            (InProgress, OnHold),
            (InProgress, Failed),
            (InProgress, Completed),
            (InProgress, EnteredInError),
            (OnHold, Cancelled),
            (OnHold, InProgress),
            (OnHold, Failed),
            (OnHold, EnteredInError),
        ]
    };

    /// The final statuses: no move leaves them.
    pub const FINAL: [TaskStatus; 5] = [
        TaskStatus::Rejected,
        TaskStatus::Cancelled,
        TaskStatus::Failed,
        TaskStatus::Completed,
        TaskStatus::EnteredInError,
    ];

    /// A task still to be done is one not final: drafted, requested, received, accepted,
    /// ready, in progress or on hold.
    pub fn is_open(self) -> bool {
        !Self::FINAL.contains(&self)
    }

    /// Where a task in this status may go next, in the order FHIR lists the statuses.
    pub fn next(self) -> Vec<TaskStatus> {
        Self::ALL.iter().copied().filter(|s| self.can_become(*s)).collect()
    }

    /// The stored text of the open statuses, for queries.
    pub fn open_codes() -> Vec<&'static str> {
        Self::ALL.iter().filter(|s| s.is_open()).map(|s| s.as_str()).collect()
    }

    pub fn can_become(self, next: TaskStatus) -> bool {
        Self::MOVES.contains(&(self, next))
    }
}

#[cfg(test)]
mod tests {
    use super::CaseStatus;
    use super::TaskStatus::{self, *};

    #[test]
    fn a_case_is_discharged_or_cancelled_then_closed() {
        use CaseStatus as C;
        assert!(C::Open.can_become(C::Discharged));
        assert!(C::Open.can_become(C::Cancelled));
        assert!(C::Discharged.can_become(C::Closed));
        assert!(!C::Open.can_become(C::Closed), "a case is discharged before it is closed");
        assert!(!C::Discharged.can_become(C::Cancelled), "a patient who left is not cancelled");
        for from in [C::Closed, C::Cancelled] {
            assert!(from.next().is_empty(), "{from} is final");
        }
        let refused = C::Open.check_move(C::Closed).unwrap_err();
        assert_eq!(refused.status(), actix_web::http::StatusCode::CONFLICT);
    }

    #[test]
    fn all_twelve_fhir_statuses_are_known() {
        let codes: Vec<String> = TaskStatus::ALL.iter().map(|s| s.as_str().replace('_', "-")).collect();
        assert_eq!(
            codes,
            [
                "draft",
                "requested",
                "received",
                "accepted",
                "rejected",
                "ready",
                "cancelled",
                "in-progress",
                "on-hold",
                "failed",
                "completed",
                "entered-in-error"
            ]
        );
    }

    #[test]
    fn every_open_status_can_be_left_and_ends_somewhere_final() {
        for from in TaskStatus::ALL.iter().copied().filter(|s| s.is_open()) {
            assert!(from.can_become(Cancelled), "{from} can be cancelled");
            assert!(from.can_become(EnteredInError), "{from} can be marked entered in error");
        }
        for (from, to) in TaskStatus::MOVES {
            assert!(from.is_open(), "{from} → {to}: moves leave open statuses only");
            assert_ne!(from, to);
        }
    }

    #[test]
    fn final_statuses_go_nowhere() {
        for from in TaskStatus::FINAL {
            for to in TaskStatus::ALL {
                assert!(!from.can_become(*to), "{from} → {to}");
            }
        }
    }

    #[test]
    fn work_starts_from_requested_and_ends_in_completed() {
        assert!(Requested.can_become(Accepted));
        assert!(Accepted.can_become(Completed));
        assert!(InProgress.can_become(Completed));
        assert!(!Requested.can_become(Completed), "a task is accepted or started before it is done");
        assert!(!OnHold.can_become(Completed), "work resumes before it is done");
        assert!(!Requested.can_become(Requested));
    }
}
