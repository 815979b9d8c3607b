//! Discharge coordination (入退院調整): a case opened by hospital staff for an admitted patient,
//! the tasks generated from templates whose deadlines follow Japanese practice (shared/DOMAIN.md,
//! DESIGN.md §4), the discharge conference, and the notices the team is given.

pub mod cases;
pub mod conferences;
pub mod deadlines;
pub mod digest;
pub mod handlers;
pub mod notices;
pub mod tasks;
pub mod templates;
pub mod workflow;

use crate::error::{AppError, AppResult};

crate::text_enum! {
    /// Where a case is: `open` while the patient is in hospital, `discharged` once they have left
    /// (post-discharge tasks still running), `closed` when coordination is over, or `cancelled`
    /// (e.g. the patient was transferred or the admission turned out not to need coordination).
    CaseStatus {
        Open => "open",
        Discharged => "discharged",
        Closed => "closed",
        Cancelled => "cancelled",
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
    /// FHIR R4 Task.status, the codes a discharge task uses, with `_` for `-`.
    TaskStatus {
        Requested => "requested",
        Accepted => "accepted",
        Rejected => "rejected",
        Cancelled => "cancelled",
        InProgress => "in_progress",
        OnHold => "on_hold",
        Completed => "completed",
    }
}

impl TaskStatus {
    /// The statuses of a task still to be done.
    pub const OPEN: [TaskStatus; 4] =
        [TaskStatus::Requested, TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::OnHold];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Where a task in this status may go next.
    pub fn next(self) -> Vec<TaskStatus> {
        Self::ALL.iter().copied().filter(|s| self.can_become(*s)).collect()
    }

    /// The stored text of the open statuses, for queries.
    pub fn open_codes() -> Vec<&'static str> {
        Self::OPEN.iter().map(|s| s.as_str()).collect()
    }

    /// The moves a person may make (FHIR Task's state machine, as the discharge workflow uses
    /// it): requested → accepted, rejected, cancelled or in_progress; accepted → in_progress,
    /// on_hold, completed or cancelled; in_progress → on_hold, completed or cancelled; on_hold →
    /// in_progress or cancelled. completed, cancelled and rejected are final.
    pub fn can_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, next),
            (Requested, Accepted | Rejected | Cancelled | InProgress)
                | (Accepted, InProgress | OnHold | Completed | Cancelled)
                | (InProgress, OnHold | Completed | Cancelled)
                | (OnHold, InProgress | Cancelled)
        )
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
    fn final_statuses_go_nowhere() {
        for from in [Completed, Cancelled, Rejected] {
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
